"""`python -m launch forecast`: the batch forecast Processing job, validated and recorded by moto."""

from __future__ import annotations

import pytest

from fleetcast.paths import SageMakerPaths
from launch.common import validate_request

pytestmark = pytest.mark.slow  # a moto server

JOB_PATHS = SageMakerPaths.from_env({})


def test_forecast_submits_a_processing_job_over_the_models_prefix(cli, clients, names) -> None:
    args = ["forecast", *names.common, "--job-name", "forecast-1", "--instance-count", "3", "--period", "14"]
    code, _, err = cli(*args)
    assert code == 0, err
    job = clients["sagemaker"].describe_processing_job(ProcessingJobName="forecast-1")
    app = job["AppSpecification"]
    assert app["ContainerEntrypoint"] == ["fleetcast", "forecast"]
    arguments = app["ContainerArguments"]
    assert arguments[arguments.index("--period") + 1] == "14"
    assert arguments[arguments.index("--models") + 1] == JOB_PATHS.forecast_models_dir.as_posix()
    (models,) = job["ProcessingInputs"]
    assert models["S3Input"]["S3Uri"] == f"s3://{names.bucket}/demo/models/"
    assert models["S3Input"]["S3DataDistributionType"] == "FullyReplicated"  # the job splits the customers
    outputs = {o["OutputName"]: o["S3Output"] for o in job["ProcessingOutputConfig"]["Outputs"]}
    assert outputs["forecasts"]["S3Uri"] == f"s3://{names.bucket}/demo/forecasts/forecast-1/"
    assert outputs["forecasts"]["LocalPath"] == JOB_PATHS.forecast_output_dir.as_posix()
    assert outputs["reports"]["LocalPath"] == JOB_PATHS.forecast_reports_dir.as_posix()
    assert "started forecast job forecast-1" in err


def test_a_dry_run_prints_a_valid_request_and_names_the_job_after_the_prefix(
    cli, names, json_documents
) -> None:
    code, out, _ = cli("forecast", *names.common, "--instance-count", "3", "--dry-run")
    assert code == 0
    (document,) = json_documents(out)
    assert document["operation"] == "CreateProcessingJob"
    request = document["request"]
    validate_request("sagemaker", "CreateProcessingJob", request)
    assert request["ProcessingJobName"].startswith("fleetcast-demo-forecast-")
    assert request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 3  # moto does not echo it


def test_bad_values_are_refused_before_anything_is_sent(cli, names) -> None:
    code, _, err = cli("forecast", *names.common, "--period", "0", "--dry-run")
    assert code == 2 and "--period must be at least 1" in err
    code, _, err = cli("forecast", *names.common, "--instance-type", "ml.bogus", "--dry-run")
    assert code == 2 and "InstanceType" in err
