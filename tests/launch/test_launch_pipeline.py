"""`python -m launch pipeline`: the definition's checks, a moto-backed create/update/start, and `wait`
on an execution (Stubber for the paths moto does not play: Executing, a failed step)."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from fleetcast.model import manifest
from launch.__main__ import build_parser
from launch.common import Layout
from launch.pipeline import check_definition, pipeline_definition
from launch.pipeline_definition import arguments_problems, definition_problems
from launch.status import EXIT_FAILED, KINDS, wait_for

COMMON = [
    "--image", "123456789012.dkr.ecr.us-east-1.amazonaws.com/fleetcast:latest",
    "--role", "arn:aws:iam::123456789012:role/FleetcastSageMaker",
    "--bucket", "fleetcast-test", "--prefix", "demo",
]  # fmt: skip
EXECUTION = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/fleetcast-demo/execution/abc123"


def definition(*extra: str) -> dict[str, Any]:
    args = build_parser().parse_args(["pipeline", *COMMON, *extra])
    return pipeline_definition(args, Layout("fleetcast-test", "demo"))


def step(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in document["Steps"] if s["Name"] == name)


def test_the_definition_chains_the_steps_by_their_properties_and_passes_every_check() -> None:
    document = definition("--train-instance-count", "4", "-H", "holdout_days=14")
    assert definition_problems(document) == [] and arguments_problems(document) == []
    assert [s["Type"] for s in document["Steps"]] == ["Processing", "Training", "Processing", "Processing"]
    assert [s["Name"] for s in document["Steps"]] == ["Split", "Train", "Publish", "Forecast"]
    train = step(document, "Train")["Arguments"]
    source = train["InputDataConfig"][0]["DataSource"]["S3DataSource"]
    assert source["S3Uri"] == {
        "Get": "Steps.Split.ProcessingOutputConfig.Outputs['customers'].S3Output.S3Uri"
    }
    assert source["S3DataDistributionType"] == "ShardedByS3Key"
    run = {"Get": "Execution.PipelineExecutionId"}
    assert train["HyperParameters"]["run_id"] == run  # the run: one per execution, every step knows it
    assert train["CheckpointConfig"]["S3Uri"] == {
        "Std:Join": {"On": "/", "Values": [{"Get": "Parameters.DataPrefix"}, "models", run]}
    }
    publish = step(document, "Publish")
    assert publish["DependsOn"] == ["Train"]
    assert publish["Arguments"]["AppSpecification"]["ContainerEntrypoint"] == [
        "fleetcast",
        "manifest",
        "merge",
    ]
    listing = {
        "Std:Join": {
            "On": "/",
            "Values": [{"Get": "Parameters.DataPrefix"}, "forecast-inputs", run, "models.manifest"],
        }
    }  # Publish lists the archives the fleet manifest names there, and Forecast reads them, sharded
    assert publish["Arguments"]["AppSpecification"]["ContainerArguments"][-4:] == [
        "--run",
        run,
        "--sagemaker-manifest",
        listing,
    ]
    assert train["ResourceConfig"]["InstanceCount"] == {"Get": "Parameters.TrainInstanceCount"}
    assert train["HyperParameters"]["holdout_days"] == "14"
    assert step(document, "Forecast")["DependsOn"] == ["Publish"]
    forecast = step(document, "Forecast")["Arguments"]
    models = forecast["ProcessingInputs"][0]["S3Input"]
    assert (models["S3Uri"], models["S3DataType"], models["S3DataDistributionType"]) == (
        listing,
        "ManifestFile",
        "ShardedByS3Key",
    )
    parameters = {p["Name"]: p["DefaultValue"] for p in document["Parameters"]}
    assert parameters["TrainInstanceCount"] == 4 and parameters["DataPrefix"] == "s3://fleetcast-test/demo"
    assert all("JobName" not in name for s in document["Steps"] for name in s["Arguments"])


def broken(change) -> list[str]:
    document = copy.deepcopy(definition())
    change(document)
    return definition_problems(document) or arguments_problems(document)


def _input(document: dict[str, Any], name: str) -> dict[str, Any]:
    return step(document, name)["Arguments"]["ProcessingInputs"][0]["S3Input"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(Version="2021-01-01"), "Version must be"),
        (lambda d: _input(d, "Forecast").update(S3Uri={"Get": "Parameters.Nope"}), "no parameter 'Nope'"),
        (
            lambda d: _input(d, "Forecast").update(S3Uri={"Get": "Steps.Train.CheckpointConfig.Bucket"}),
            "'Bucket' is not a property of CheckpointConfig",
        ),
        (
            lambda d: _input(d, "Forecast").update(S3Uri={"Get": "Steps.Train.ResourceConfig.InstanceCount"}),
            "is a integer, not a string",
        ),
        (
            lambda d: _input(d, "Split").update(S3Uri={"Get": "Steps.Forecast.ProcessingJobArn"}),
            "not an earlier step",
        ),
        (lambda d: _input(d, "Split").update(S3DataDistributionType="Bogus"), "is not one of"),
        (lambda d: step(d, "Train")["Arguments"].update(TrainingJobName="x"), "must not set TrainingJobName"),
        (lambda d: d["Parameters"][1].update(DefaultValue="one"), "is not a Integer"),
        (lambda d: d["Steps"][2].update(Name="Split"), "the name is used twice"),
        (
            lambda d: step(d, "Publish").update(DependsOn=["Forecast"]),
            "DependsOn 'Forecast' is not an earlier",
        ),
        (lambda d: d["Steps"][0].update(Type="Lambda"), "Type 'Lambda' is not one of"),
        (
            lambda d: step(d, "Train")["Arguments"]["StoppingCondition"].update(MaxRuntimeInSeconds=0),
            "below the minimum",
        ),
    ],
)
def test_each_check_catches_what_it_is_for(change, expected: str) -> None:
    problems = broken(change)
    assert any(expected in problem for problem in problems), problems


@pytest.mark.slow  # a moto server
def test_pipeline_is_created_then_updated_and_an_execution_runs_against_moto(cli, clients, names) -> None:
    clients["s3"].create_bucket(Bucket=names.bucket)
    code, _, err = cli("pipeline", *names.common)
    assert code == 0, err
    assert "created pipeline fleetcast-demo (4 steps)" in err
    sagemaker = clients["sagemaker"]
    stored = json.loads(sagemaker.describe_pipeline(PipelineName="fleetcast-demo")["PipelineDefinition"])
    assert [s["Name"] for s in stored["Steps"]] == ["Split", "Train", "Publish", "Forecast"]
    # The Train step reads the fleet manifest: before the first run, an empty one was written for it.
    assert "wrote an empty fleet manifest" in err
    empty = clients["s3"].get_object(Bucket=names.bucket, Key="demo/models/manifest.csv.gz")["Body"].read()
    assert list(manifest.iter_entries(io.BytesIO(empty))) == []
    (execution,) = sagemaker.list_pipeline_executions(PipelineName="fleetcast-demo")[
        "PipelineExecutionSummaries"
    ]

    code, _, err = cli("pipeline", *names.common, "--forecast-instance-count", "3", "--no-start")
    assert code == 0 and "updated pipeline fleetcast-demo" in err, err
    stored = json.loads(sagemaker.describe_pipeline(PipelineName="fleetcast-demo")["PipelineDefinition"])
    forecast_count = next(p for p in stored["Parameters"] if p["Name"] == "ForecastInstanceCount")
    assert forecast_count["DefaultValue"] == 3
    assert (
        len(sagemaker.list_pipeline_executions(PipelineName="fleetcast-demo")["PipelineExecutionSummaries"])
        == 1
    )

    code, out, err = cli("wait", "pipeline", "--prefix", "demo", "--poll-seconds", "0")
    assert code == 0, err
    assert execution["PipelineExecutionArn"] in out and "Succeeded" in out


@pytest.mark.slow  # a moto server
def test_a_manifest_published_while_pipeline_starts_is_not_emptied(cli, clients, names, monkeypatch) -> None:
    from launch.common import Aws

    clients["s3"].create_bucket(Bucket=names.bucket)
    key = f"{names.prefix}/models/{manifest.MANIFEST_NAME}"
    published = b"a run's fleet manifest"
    real_client = Aws.client

    def client_with_a_publish_landing(self, service: str):
        made = real_client(self, service)
        if (
            service == "s3"
        ):  # a run publishes after pipeline found no manifest, before it writes the empty one

            def publish(**_):
                clients["s3"].put_object(Bucket=names.bucket, Key=key, Body=published)

            made.meta.events.register_first("before-call.s3.PutObject", publish, unique_id="publish")
        return made

    monkeypatch.setattr(Aws, "client", client_with_a_publish_landing)
    code, _, err = cli("pipeline", *names.common, "--no-start")
    assert code == 0, err
    assert "published meanwhile: kept" in err
    assert clients["s3"].get_object(Bucket=names.bucket, Key=key)["Body"].read() == published


@pytest.mark.slow  # a moto server
def test_models_without_a_fleet_manifest_are_refused_with_what_to_do(cli, clients, names) -> None:
    clients["s3"].create_bucket(Bucket=names.bucket)
    clients["s3"].put_object(Bucket=names.bucket, Key="demo/models/old-run/c1.tar.gz", Body=b"an archive")
    code, _, err = cli("pipeline", *names.common)
    assert code == 2 and "holds models but no manifest.csv.gz" in err and "manifest merge" in err
    assert clients["sagemaker"].list_pipelines()["PipelineSummaries"] == []


def test_the_train_step_reads_the_fleet_manifest_under_the_data_prefix() -> None:
    train = step(definition(), "Train")["Arguments"]
    (previous,) = [c for c in train["InputDataConfig"] if c["ChannelName"] == "manifest"]
    assert previous["DataSource"]["S3DataSource"]["S3Uri"] == {
        "Std:Join": {"On": "/", "Values": [{"Get": "Parameters.DataPrefix"}, "models", "manifest.csv.gz"]}
    }
    assert previous["DataSource"]["S3DataSource"]["S3DataDistributionType"] == "FullyReplicated"


def test_a_dry_run_prints_the_definition_and_the_requests_and_sends_nothing(
    cli, names, json_documents
) -> None:
    code, out, err = cli("pipeline", *names.common, "--dry-run")
    assert code == 0, err
    documents = json_documents(out)
    assert [d.get("operation") for d in documents[1:]] == ["CreatePipeline", "StartPipelineExecution"]
    sent = json.loads(documents[1]["request"]["PipelineDefinition"])
    assert sent == documents[0]["PipelineDefinition"]
    check_definition(sent)


def _execution(status: str, **extra: Any) -> dict[str, Any]:
    created = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return {
        "PipelineExecutionArn": EXECUTION,
        "PipelineExecutionStatus": status,
        "CreationTime": created,
        **extra,
    }


def _steps(*states: tuple[str, str, str | None]) -> dict[str, Any]:
    listed = []
    for name, status, reason in reversed(states):  # the API lists the newest step first
        entry = {"StepName": name, "StepStatus": status}
        if reason:
            entry["FailureReason"] = reason
        listed.append(entry)
    return {"PipelineExecutionSteps": listed}


def test_wait_follows_an_execution_to_a_failed_step_and_prints_its_reason() -> None:
    client = boto3.session.Session(region_name="us-east-1").client("sagemaker")
    describe = {"PipelineExecutionArn": EXECUTION}
    with Stubber(client) as stub:
        stub.add_response("describe_pipeline_execution", _execution("Executing"), describe)
        stub.add_response("list_pipeline_execution_steps", _steps(("Split", "Executing", None)), describe)
        stub.add_response("describe_pipeline_execution", _execution("Executing"), describe)
        stub.add_response(
            "list_pipeline_execution_steps",
            _steps(("Split", "Succeeded", None), ("Train", "Executing", None)),
            describe,
        )
        stub.add_response(
            "describe_pipeline_execution", _execution("Failed", FailureReason="Step failure: Train"), describe
        )
        stub.add_response(
            "list_pipeline_execution_steps",
            _steps(
                ("Split", "Succeeded", None), ("Train", "Failed", "ClientError: 12 of 20 customers failed")
            ),
            describe,
        )
        out = io.StringIO()
        code = wait_for(client, KINDS["pipeline"], EXECUTION, out=out, sleep=lambda _: None, poll_seconds=0)
        stub.assert_no_pending_responses()
    text = out.getvalue()
    assert code == EXIT_FAILED
    assert "Executing - Split Succeeded, Train Executing" in text
    assert "step Train Failed: ClientError: 12 of 20 customers failed" in text


def test_the_run_id_is_the_execution_and_cannot_be_set(cli, names) -> None:
    code, _, err = cli("pipeline", *names.common, "-H", "run_id=mine", "--dry-run")
    assert code == 2 and "drop -H run_id" in err
