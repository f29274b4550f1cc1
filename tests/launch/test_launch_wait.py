"""`wait`/`status` over InProgress -> Completed and -> Failed: real boto3 clients under botocore's Stubber.

moto reports Completed/InService at once, so these paths need scripted describe answers.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from launch.common import Aws
from launch.deploy import update
from launch.status import EXIT_FAILED, EXIT_TIMEOUT, KINDS, show_status, wait_for

CREATED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ARN = "arn:aws:sagemaker:us-east-1:123456789012:"


def _sagemaker() -> Any:
    return boto3.session.Session(region_name="us-east-1").client("sagemaker")


def _training(status: str, secondary: str, message: str | None = None, **extra: Any) -> dict[str, Any]:
    response = {
        "TrainingJobName": "job",
        "TrainingJobArn": ARN + "training-job/job",
        "ModelArtifacts": {"S3ModelArtifacts": "s3://b/demo/output/job/output/model.tar.gz"},
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": CREATED,
        **extra,
    }
    if message:
        response["SecondaryStatusTransitions"] = [
            {"Status": secondary, "StartTime": CREATED, "StatusMessage": message}
        ]
    return response


def _endpoint(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "EndpointName": "fleetcast-demo",
        "EndpointArn": ARN + "endpoint/fleetcast-demo",
        "EndpointStatus": status,
        "CreationTime": CREATED,
        "LastModifiedTime": CREATED,
        **extra,
    }


class FakeClock:
    """Time that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _wait(client: Any, kind: str, name: str, **options: Any) -> tuple[int, str, FakeClock]:
    clock, out = FakeClock(), io.StringIO()
    code = wait_for(client, KINDS[kind], name, out=out, sleep=clock.sleep, clock=clock, **options)
    return code, out.getvalue(), clock


def test_training_in_progress_then_completed() -> None:
    client = _sagemaker()
    with Stubber(client) as stub:
        expected = {"TrainingJobName": "job"}
        stub.add_response("describe_training_job", _training("InProgress", "Starting"), expected)
        stub.add_response(
            "describe_training_job",
            _training("InProgress", "Training", "Training image download completed. Training in progress."),
            expected,
        )
        stub.add_response(
            "describe_training_job",
            _training("InProgress", "Training", "Training image download completed. Training in progress."),
            expected,
        )
        stub.add_response(
            "describe_training_job",
            _training(
                "Completed",
                "Completed",
                "Training job completed",
                FinalMetricDataList=[
                    {"MetricName": "fleet:median_smape", "Value": 11.9, "Timestamp": CREATED}
                ],
                BillableTimeInSeconds=120,
                TrainingTimeInSeconds=400,
                CheckpointConfig={"S3Uri": "s3://b/demo/models/"},
            ),
            expected,
        )
        code, out, clock = _wait(client, "training", "job", poll_seconds=30)
        stub.assert_no_pending_responses()
    assert code == 0
    assert clock.sleeps == [30, 30, 30]
    lines = out.splitlines()
    assert lines[0] == "[    0m00s] training job: InProgress / Starting"
    assert lines[1] == (
        "[    0m30s] training job: InProgress / Training - "
        "Training image download completed. Training in progress."
    )
    # The unchanged third answer prints nothing; the next line is the completion.
    assert lines[2] == "[    1m30s] training job: Completed - Training job completed"
    assert "final metrics: fleet:median_smape=11.9" in out
    assert "billable 120s of 400s training time" in out
    assert "models: s3://b/demo/models/" in out
    assert lines[-1] == "training job Completed"


def test_training_failed_prints_the_failure_reason_and_exits_non_zero() -> None:
    client = _sagemaker()
    reason = "AlgorithmError: 3 of 10 customers failed (30.0% > max_failure_rate 10.0%)"
    with Stubber(client) as stub:
        stub.add_response(
            "describe_training_job", _training("InProgress", "Training"), {"TrainingJobName": "job"}
        )
        stub.add_response(
            "describe_training_job",
            _training("Failed", "Failed", FailureReason=reason),
            {"TrainingJobName": "job"},
        )
        code, out, _ = _wait(client, "training", "job", poll_seconds=5)
    assert code == EXIT_FAILED != 0
    assert out.splitlines()[-1] == f"training job Failed: {reason}"


def test_processing_failed_and_stopped_are_failures() -> None:
    client = _sagemaker()

    def processing(status: str, **extra: Any) -> dict[str, Any]:
        return {
            "ProcessingJobName": "split",
            "ProcessingJobArn": ARN + "processing-job/split",
            "ProcessingJobStatus": status,
            "ProcessingResources": {
                "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30}
            },
            "AppSpecification": {"ImageUri": "image"},
            "CreationTime": CREATED,
            **extra,
        }

    with Stubber(client) as stub:
        stub.add_response("describe_processing_job", processing("InProgress"), {"ProcessingJobName": "split"})
        stub.add_response(
            "describe_processing_job",
            processing("Failed", FailureReason="ClientError: no CSV under /opt/ml/processing/input"),
            {"ProcessingJobName": "split"},
        )
        stub.add_response("describe_processing_job", processing("Stopped"), {"ProcessingJobName": "split"})
        code, out, _ = _wait(client, "processing", "split", poll_seconds=1)
        assert code == EXIT_FAILED
        assert "processing split Failed: ClientError: no CSV under /opt/ml/processing/input" in out
        code, out, _ = _wait(client, "processing", "split")
        assert code == EXIT_FAILED
        assert "processing split Stopped: (no reason given)" in out


def test_endpoint_creating_then_in_service_and_creating_then_failed() -> None:
    client = _sagemaker()
    expected = {"EndpointName": "fleetcast-demo"}
    with Stubber(client) as stub:
        stub.add_response("describe_endpoint", _endpoint("Creating"), expected)
        stub.add_response("describe_endpoint", _endpoint("InService"), expected)
        code, out, _ = _wait(client, "endpoint", "fleetcast-demo", poll_seconds=10)
        assert code == 0
        assert "endpoint fleetcast-demo: Creating" in out
        assert out.splitlines()[-1] == "endpoint fleetcast-demo InService"

        reason = "The primary container for production variant AllTraffic did not pass the ping health check."
        stub.add_response("describe_endpoint", _endpoint("Creating"), expected)
        stub.add_response("describe_endpoint", _endpoint("Failed", FailureReason=reason), expected)
        code, out, _ = _wait(client, "endpoint", "fleetcast-demo", poll_seconds=10)
        assert code == EXIT_FAILED
        assert out.splitlines()[-1] == f"endpoint fleetcast-demo Failed: {reason}"


def test_wait_gives_up_at_the_timeout_and_prints_heartbeats() -> None:
    client = _sagemaker()
    with Stubber(client) as stub:
        for _ in range(4):
            stub.add_response("describe_endpoint", _endpoint("Creating"), {"EndpointName": "fleetcast-demo"})
        code, out, clock = _wait(
            client, "endpoint", "fleetcast-demo", poll_seconds=100, timeout_seconds=300, heartbeat_seconds=200
        )
    assert code == EXIT_TIMEOUT
    assert clock.sleeps == [100, 100, 100]
    assert [line[:11] for line in out.splitlines()[:2]] == ["[    0m00s]", "[    3m20s]"]
    assert "gave up after 5m00s: endpoint fleetcast-demo is still Creating" in out


def test_status_of_a_failed_job_exits_non_zero() -> None:
    client = _sagemaker()
    with Stubber(client) as stub:
        stub.add_response(
            "describe_training_job",
            _training("Failed", "Failed", FailureReason="unknown hyperparameter 'seasonalty'"),
            {"TrainingJobName": "job"},
        )
        stub.add_response(
            "describe_training_job", _training("InProgress", "Training"), {"TrainingJobName": "job"}
        )
        out = io.StringIO()
        assert show_status(client, KINDS["training"], "job", out=out) == EXIT_FAILED
        assert "training job Failed: unknown hyperparameter 'seasonalty'" in out.getvalue()
        assert show_status(client, KINDS["training"], "job", out=io.StringIO()) == 0


def test_update_keeps_the_variant_and_the_autoscaled_instance_count() -> None:
    client = _sagemaker()
    aws = Aws(region="us-east-1")
    aws.use_client("sagemaker", client)
    with Stubber(client) as stub:
        stub.add_response(
            "describe_endpoint",
            _endpoint(
                "InService",
                EndpointConfigName="fleetcast-demo-20260101-000000",
                ProductionVariants=[{"VariantName": "Blue", "CurrentInstanceCount": 3}],
            ),
            {"EndpointName": "fleetcast-demo"},
        )
        stub.add_response(
            "describe_endpoint_config",
            {
                "EndpointConfigName": "fleetcast-demo-20260101-000000",
                "EndpointConfigArn": ARN + "endpoint-config/fleetcast-demo-20260101-000000",
                "ProductionVariants": [
                    {
                        "VariantName": "Blue",
                        "ModelName": "fleetcast-demo-20260101-000000",
                        "InstanceType": "ml.c5.xlarge",
                        "InitialInstanceCount": 1,
                    }
                ],
                "CreationTime": CREATED,
            },
            {"EndpointConfigName": "fleetcast-demo-20260101-000000"},
        )
        stub.add_response(
            "describe_model",
            {
                "ModelName": "fleetcast-demo-20260101-000000",
                "ModelArn": ARN + "model/fleetcast-demo-20260101-000000",
                "CreationTime": CREATED,
                "ExecutionRoleArn": "arn:aws:iam::123456789012:role/FleetcastSageMaker",
                "PrimaryContainer": {
                    "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/fleetcast:v1",
                    "Mode": "MultiModel",
                    "ModelDataUrl": "s3://b-1/demo/models/",
                    "Environment": {"FLEETCAST_SERVER": "lean"},
                },
            },
            {"ModelName": "fleetcast-demo-20260101-000000"},
        )
        new_image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/fleetcast:v2"
        stub.add_response(
            "create_model",
            {"ModelArn": ARN + "model/new"},
            {
                "ModelName": ANY,
                "ExecutionRoleArn": "arn:aws:iam::123456789012:role/FleetcastSageMaker",
                "PrimaryContainer": {
                    "Image": new_image,
                    "Mode": "MultiModel",
                    "ModelDataUrl": "s3://b-1/demo/models/",
                    "Environment": {"FLEETCAST_SERVER": "lean"},
                },
            },
        )
        stub.add_response(
            "create_endpoint_config",
            {"EndpointConfigArn": ARN + "endpoint-config/new"},
            {
                "EndpointConfigName": ANY,
                "ProductionVariants": [
                    {
                        "VariantName": "Blue",
                        "ModelName": ANY,
                        "InstanceType": "ml.c5.xlarge",
                        "InitialInstanceCount": 3,
                        "InitialVariantWeight": 1.0,
                    }
                ],
            },
        )
        stub.add_response(
            "update_endpoint",
            {"EndpointArn": ARN + "endpoint/fleetcast-demo"},
            {"EndpointName": "fleetcast-demo", "EndpointConfigName": ANY},
        )
        # Only the image is given: role, models prefix, environment, variant and count are kept.
        version = update(aws, endpoint="fleetcast-demo", image=new_image)
        stub.assert_no_pending_responses()
    assert version.startswith("fleetcast-demo-") and version != "fleetcast-demo-20260101-000000"


def test_update_refuses_to_change_the_instance_type_of_an_autoscaled_variant() -> None:
    from launch.common import LaunchError

    client = _sagemaker()
    scaling = boto3.session.Session(region_name="us-east-1").client("application-autoscaling")
    aws = Aws(region="us-east-1")
    aws.use_client("sagemaker", client)
    aws.use_client("application-autoscaling", scaling)
    with Stubber(client) as stub, Stubber(scaling) as scaling_stub:
        stub.add_response(
            "describe_endpoint",
            _endpoint("InService", EndpointConfigName="c1"),
            {"EndpointName": "fleetcast-demo"},
        )
        stub.add_response(
            "describe_endpoint_config",
            {
                "EndpointConfigName": "c1",
                "EndpointConfigArn": ARN + "endpoint-config/c1",
                "ProductionVariants": [
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": "m1",
                        "InstanceType": "ml.m5.large",
                        "InitialInstanceCount": 1,
                    }
                ],
                "CreationTime": CREATED,
            },
            {"EndpointConfigName": "c1"},
        )
        stub.add_response(
            "describe_model",
            {
                "ModelName": "m1",
                "ModelArn": ARN + "model/m1",
                "CreationTime": CREATED,
                "ExecutionRoleArn": "arn:aws:iam::123456789012:role/FleetcastSageMaker",
                "PrimaryContainer": {
                    "Image": "image:v1",
                    "Mode": "MultiModel",
                    "ModelDataUrl": "s3://b-1/demo/models/",
                },
            },
            {"ModelName": "m1"},
        )
        scaling_stub.add_response(
            "describe_scalable_targets",
            {
                "ScalableTargets": [
                    {
                        "ServiceNamespace": "sagemaker",
                        "ResourceId": "endpoint/fleetcast-demo/variant/AllTraffic",
                        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
                        "MinCapacity": 1,
                        "MaxCapacity": 4,
                        "RoleARN": "arn:aws:iam::123456789012:role/aws-service-role",
                        "CreationTime": CREATED,
                    }
                ]
            },
            {"ServiceNamespace": "sagemaker", "ResourceIds": ["endpoint/fleetcast-demo/variant/AllTraffic"]},
        )
        with pytest.raises(LaunchError, match="teardown --autoscaling-only"):
            update(aws, endpoint="fleetcast-demo", image="image:v2", instance_type="ml.c5.xlarge")
        stub.assert_no_pending_responses()
