"""`python -m launch forecast`: the batch forecast Processing job, validated and recorded by moto."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetcast.paths import SageMakerPaths
from launch.common import validate_request

pytestmark = pytest.mark.slow  # a moto server

JOB_PATHS = SageMakerPaths.from_env({})


def test_without_a_fleet_manifest_every_instance_receives_the_models_prefix(cli, clients, names) -> None:
    clients["s3"].create_bucket(Bucket=names.bucket)
    code, _, err = cli("forecast", *names.common, "--job-name", "forecast-0")
    assert code == 2 and "holds no models: train first" in err  # nothing to forecast: no job
    assert clients["sagemaker"].list_processing_jobs()["ProcessingJobSummaries"] == []
    clients["s3"].put_object(
        Bucket=names.bucket, Key=f"{names.prefix}/models/run-1/c0.tar.gz", Body=b"an archive"
    )
    args = ["forecast", *names.common, "--job-name", "forecast-1", "--instance-count", "3", "--period", "14"]
    code, _, err = cli(*args)
    assert code == 0, err
    assert "no fleet manifest" in err
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
    code, out, err = cli("forecast", *names.common, "--instance-count", "3", "--dry-run")
    assert code == 0
    (document,) = json_documents(out)
    assert document["operation"] == "CreateProcessingJob"
    request = document["request"]
    validate_request("sagemaker", "CreateProcessingJob", request)
    name = request["ProcessingJobName"]
    assert name.startswith("fleetcast-demo-forecast-")
    assert request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 3  # moto does not echo it
    (models,) = request["ProcessingInputs"]
    uri = f"s3://{names.bucket}/demo/forecast-inputs/{name}/models.manifest"
    assert models["S3Input"]["S3Uri"] == uri and f"would write {uri}" in err
    code, out, _ = cli("forecast", *names.common, "--models-uri", "s3://elsewhere/m/", "--dry-run")
    (document,) = json_documents(out)
    (models,) = document["request"]["ProcessingInputs"]
    assert (models["S3Input"]["S3Uri"], models["S3Input"]["S3DataType"]) == ("s3://elsewhere/m/", "S3Prefix")


# ---- with a fleet manifest: a SageMaker manifest file of the serving versions, sharded ------------------

CUSTOMERS = [f"c{i}" for i in range(7)]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """models/ keys -> archive bytes: run-2 retrains c0..c3 (with intervals), run-1 holds every customer
    (without intervals, so a forecast shows which version it came from); and the fleet manifest."""
    from dataclasses import replace

    from fleetcast.model import manifest
    from fleetcast.model.settings import ProphetSettings
    from tests.serving.models import archive_model, daily_history

    root = tmp_path_factory.mktemp("fleet")
    old = replace(ProphetSettings(), uncertainty_samples=0)
    objects, entries = {}, []
    for index, customer in enumerate(CUSTOMERS):
        runs = ["run-1", "run-2"] if index < 4 else ["run-1"]
        for run in runs:
            settings = old if run == "run-1" else ProphetSettings()
            path = archive_model(root / run, customer, daily_history(index, rows=60), settings)
            objects[f"{run}/{path.name}"] = path.read_bytes()
        entries.append(manifest.entry_for(customer, runs[-1], "d", "s", "configured", None))
    manifest.write_manifest(root / manifest.MANIFEST_NAME, entries)
    objects[manifest.MANIFEST_NAME] = (root / manifest.MANIFEST_NAME).read_bytes()
    return objects


def put_fleet(clients, names, fleet: dict[str, bytes]) -> None:
    clients["s3"].create_bucket(Bucket=names.bucket)
    for key, payload in fleet.items():
        clients["s3"].put_object(Bucket=names.bucket, Key=f"{names.prefix}/models/{key}", Body=payload)


def run_instances(
    tmp_path: Path, clients, job: dict, monkeypatch, flat: bool = False
) -> dict[str, list[dict[str, str]]]:
    """Each instance of the described job as SageMaker runs it: its config files, its share of the manifest
    file's objects (dealt round-robin, fleetcast.local.sharding; below LocalPath with their folders, or
    `flat`: AWS does not document which), the job's arguments; host -> its rows."""
    from fleetcast.cli import main as cli_main
    from fleetcast.forecast.dataset import read_rows
    from fleetcast.local.sharding import assign_round_robin, host_names

    (source,) = job["ProcessingInputs"]
    assert (source["S3Input"]["S3DataType"], source["S3Input"]["S3DataDistributionType"]) == (
        "ManifestFile",
        "ShardedByS3Key",
    )
    bucket, _, key = source["S3Input"]["S3Uri"].removeprefix("s3://").partition("/")
    header, *keys = json.loads(clients["s3"].get_object(Bucket=bucket, Key=key)["Body"].read())
    prefix_bucket, _, prefix = header["prefix"].removeprefix("s3://").partition("/")
    hosts = host_names(3)
    rows = {}
    for host, share in assign_round_robin(keys, len(hosts)).items():
        paths = SageMakerPaths(tmp_path / host)
        paths.processing_config_dir.mkdir(parents=True)
        resources = {"current_host": host, "hosts": hosts}
        paths.processing_resource_config_file.write_text(json.dumps(resources))
        paths.processing_job_config_file.write_text(json.dumps(job, default=str))
        local = paths.in_container(source["S3Input"]["LocalPath"])
        for relative in share:
            target = local / (Path(relative).name if flat else relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            body = clients["s3"].get_object(Bucket=prefix_bucket, Key=prefix + relative)["Body"].read()
            target.write_bytes(body)
        arguments = job["AppSpecification"]["ContainerArguments"]
        relocated = [str(paths.in_container(a)) if a.startswith("/opt/ml/") else a for a in arguments]
        monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(paths.base))
        assert cli_main(["forecast", *relocated, "--workers", "1"]) == 0, host
        rows[host] = list(read_rows(paths.forecast_output_dir / f"forecasts-{host}.csv.gz"))
    return rows


@pytest.mark.parametrize("flat", [False, True], ids=["keys-keep-folders", "flat"])
def test_with_a_fleet_manifest_instances_receive_only_their_share_of_the_serving_versions(
    cli, clients, names, fleet, tmp_path: Path, monkeypatch, flat: bool
) -> None:
    put_fleet(clients, names, fleet)
    args = ["forecast", *names.common, "--job-name", "forecast-2", "--instance-count", "3", "--period", "2"]
    code, _, err = cli(*args)
    assert code == 0, err
    assert "7 archives" in err
    job = clients["sagemaker"].describe_processing_job(ProcessingJobName="forecast-2")
    (models,) = job["ProcessingInputs"]
    assert (
        models["S3Input"]["S3Uri"] == f"s3://{names.bucket}/demo/forecast-inputs/forecast-2/models.manifest"
    )
    rows = run_instances(tmp_path, clients, job, monkeypatch, flat)
    by_host = {host: {row["customer"] for row in found} for host, found in rows.items()}
    assert all(by_host.values())  # 7 archives over 3 instances: each had some
    everyone = [row["customer"] for found in rows.values() for row in found]
    assert sorted(everyone) == sorted(CUSTOMERS * 2)  # every customer once (2 steps each), on one host
    served = {row["customer"]: row["yhat_lower"] != "" for found in rows.values() for row in found}
    assert served == {c: i < 4 for i, c in enumerate(CUSTOMERS)}  # run-2 where it serves, else run-1
    # The job name's manifest file is never written twice.
    code, _, err = cli(*args)
    assert code == 2 and "was used before" in err


def test_an_empty_fleet_manifest_is_refused_before_a_job_starts(cli, clients, names, tmp_path: Path) -> None:
    from fleetcast.model import manifest

    manifest.write_manifest(tmp_path / manifest.MANIFEST_NAME, [])
    put_fleet(clients, names, {manifest.MANIFEST_NAME: (tmp_path / manifest.MANIFEST_NAME).read_bytes()})
    code, _, err = cli("forecast", *names.common, "--job-name", "forecast-3")
    assert code == 2 and "lists no customer" in err
    assert clients["sagemaker"].list_processing_jobs()["ProcessingJobSummaries"] == []


def test_a_request_the_service_would_refuse_leaves_no_manifest_file_to_block_its_name(
    cli, clients, names, fleet
) -> None:
    put_fleet(clients, names, fleet)
    args = ["forecast", *names.common, "--job-name", "forecast-4"]
    code, _, err = cli(*args, "--instance-type", "ml.bogus")
    assert code == 2 and "InstanceType" in err
    listing = clients["s3"].list_objects_v2(Bucket=names.bucket, Prefix=f"{names.prefix}/forecast-inputs/")
    assert listing["KeyCount"] == 0
    code, _, err = cli(*args)  # the same name, corrected
    assert code == 0 and "started forecast job forecast-4" in err, err


def test_bad_values_are_refused_before_anything_is_sent(cli, names) -> None:
    code, _, err = cli("forecast", *names.common, "--period", "0", "--dry-run")
    assert code == 2 and "--period must be at least 1" in err
    code, _, err = cli("forecast", *names.common, "--instance-type", "ml.bogus", "--dry-run")
    assert code == 2 and "InstanceType" in err


@pytest.mark.parametrize(
    ("uri", "local"),
    [
        ("s3://weather/nightly/forecast.csv.gz", "/opt/ml/processing/input/regressors/forecast.csv.gz"),
        ("s3://weather/per-customer/", "/opt/ml/processing/input/regressors"),
    ],
)
def test_future_regressor_values_reach_the_job_as_a_file_or_a_folder(
    cli, names, json_documents, uri: str, local: str
) -> None:
    code, out, err = cli("forecast", *names.common, "--regressors-uri", uri, "--dry-run")
    assert code == 0, err
    (document,) = json_documents(out)
    request = document["request"]
    validate_request("sagemaker", "CreateProcessingJob", request)
    regressors = next(i for i in request["ProcessingInputs"] if i["InputName"] == "regressors")
    assert regressors["S3Input"]["S3Uri"] == uri
    assert regressors["S3Input"]["LocalPath"] == JOB_PATHS.forecast_regressors_dir.as_posix()
    assert regressors["S3Input"]["S3DataDistributionType"] == "FullyReplicated"
    arguments = request["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--regressors") + 1] == local
    code, _, err = cli("forecast", *names.common, "--regressors-uri", "weather.csv", "--dry-run")
    assert code == 2 and "must be an s3:// URI" in err
    code, _, err = cli(
        "forecast", *names.common, "--regressors-uri", "s3://weather/per-customer", "--dry-run"
    )
    assert code == 2 and "or a prefix of <customer>.csv files ending in /" in err
