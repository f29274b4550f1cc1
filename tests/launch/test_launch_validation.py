"""The request validator walks botocore's real service model: enums, patterns, ranges, required members."""

from __future__ import annotations

import re

import pytest

from launch.common import (
    InvalidRequestError,
    JobSpec,
    LaunchError,
    Layout,
    compiled_pattern,
    service_model,
    unique_name,
    validate_request,
)
from launch.train import training_request


def _training(**overrides: object) -> dict:
    job = JobSpec(
        name="fleetcast-demo-train-1",
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/fleetcast:latest",
        role="arn:aws:iam::123456789012:role/FleetcastSageMaker",
        layout=Layout("fleetcast-test", "demo"),
        instance_type="ml.m5.xlarge",
        instance_count=2,
        volume_gb=30,
        max_runtime_seconds=3600,
    )
    request = training_request(
        job,
        hyperparameters={"holdout_days": "28"},
        spot=False,
        max_wait_seconds=None,
        output_path=None,
    )
    request.update(overrides)
    return request


def _problems(service: str, operation: str, request: dict) -> list[str]:
    with pytest.raises(InvalidRequestError) as caught:
        validate_request(service, operation, request)
    return caught.value.problems


def test_a_well_formed_training_request_passes() -> None:
    validate_request("sagemaker", "CreateTrainingJob", _training())
    validate_request("sagemaker", "create_training_job", _training())  # boto3's method name works too


def test_a_bad_enum_names_the_path_and_the_allowed_values() -> None:
    request = _training()
    request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataDistributionType"] = "Bogus"
    assert _problems("sagemaker", "CreateTrainingJob", request) == [
        "InputDataConfig[0].DataSource.S3DataSource.S3DataDistributionType: "
        "'Bogus' is not one of FullyReplicated, ShardedByS3Key"
    ]


def test_a_large_enum_suggests_the_closest_values() -> None:
    (problem,) = _problems(
        "sagemaker",
        "CreateTrainingJob",
        _training(ResourceConfig={"InstanceType": "ml.m5.xlarg", "InstanceCount": 1, "VolumeSizeInGB": 30}),
    )
    assert problem.startswith("ResourceConfig.InstanceType: 'ml.m5.xlarg' is not one of the ")
    assert "allowed values of TrainingInstanceType (closest: ml.m5.xlarge" in problem


def test_a_bad_name_is_reported_with_its_pattern() -> None:
    assert _problems("sagemaker", "CreateTrainingJob", _training(TrainingJobName="bad name!")) == [
        "TrainingJobName: 'bad name!' does not match pattern [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
    ]


def test_patterns_must_match_the_whole_value_as_aws_requires() -> None:
    # The model's pattern has no anchors; a prefix match would wrongly accept "ok-name_with_underscore".
    problems = _problems("sagemaker", "CreateTrainingJob", _training(TrainingJobName="ok-name_x"))
    assert problems == [
        "TrainingJobName: 'ok-name_x' does not match pattern [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
    ]


def test_lengths_ranges_required_and_unknown_members_are_all_reported_at_once() -> None:
    request = _training(TrainingJobName="x" * 64, StoppingCondition={"MaxRuntimeInSeconds": 0}, Bogus=1)
    del request["RoleArn"]
    problems = _problems("sagemaker", "CreateTrainingJob", request)
    assert "TrainingJobName: has 64 characters, at most 63 allowed" in problems
    assert "StoppingCondition.MaxRuntimeInSeconds: 0 is below the minimum 1" in problems
    assert "RoleArn: required member is missing" in problems
    assert any(p.startswith("Bogus: not a member of CreateTrainingJobRequest") for p in problems)
    assert (
        "TrainingJobName: '" + "x" * 64 + "' does not match pattern [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
        in problems
    )
    assert len(problems) == 5


def test_types_are_checked_including_string_hyperparameters() -> None:
    problems = _problems("sagemaker", "CreateTrainingJob", _training(HyperParameters={"holdout_days": 28}))
    assert problems == ["HyperParameters['holdout_days']: expected a string, got 28"]
    problems = _problems("sagemaker", "CreateTrainingJob", _training(EnableManagedSpotTraining="yes"))
    assert problems == ["EnableManagedSpotTraining: expected true or false, got 'yes'"]


def test_a_misspelt_member_gets_a_suggestion() -> None:
    request = _training()
    request["ResourceConfig"]["InstanceCont"] = request["ResourceConfig"].pop("InstanceCount")
    problems = _problems("sagemaker", "CreateTrainingJob", request)
    assert (
        "ResourceConfig.InstanceCont: not a member of ResourceConfig (did you mean InstanceCount?)"
        in problems
    )


def test_multi_model_container_mode_enum() -> None:
    request = {
        "ModelName": "m",
        "ExecutionRoleArn": "arn:aws:iam::123456789012:role/FleetcastSageMaker",
        "PrimaryContainer": {"Image": "i", "Mode": "MultipleModels", "ModelDataUrl": "s3://b/p/models/"},
    }
    assert _problems("sagemaker", "CreateModel", request) == [
        "PrimaryContainer.Mode: 'MultipleModels' is not one of SingleModel, MultiModel"
    ]


def test_java_only_pattern_syntax_is_translated_for_invoke_endpoint() -> None:
    # TargetModel's pattern is \A\S[\p{Print}]*\z: Java syntax that Python's re rejects as written.
    good = {"EndpointName": "fleetcast-demo", "TargetModel": "7.tar.gz", "Body": b"{}"}
    validate_request("sagemaker-runtime", "InvokeEndpoint", good)
    for bad in (" 7.tar.gz", "kunde-\u00fc.tar.gz"):
        (problem,) = _problems("sagemaker-runtime", "InvokeEndpoint", {**good, "TargetModel": bad})
        assert problem.startswith(f"TargetModel: {bad!r} does not match pattern")


def test_only_unicode_category_patterns_are_left_unchecked() -> None:
    unchecked = set()
    for service in ("sagemaker", "sagemaker-runtime", "application-autoscaling", "s3"):
        model = service_model(service)
        for name in model.shape_names:
            pattern = model.shape_for(name).metadata.get("pattern")
            if pattern and compiled_pattern(pattern) is None:
                unchecked.add(pattern)
    assert unchecked, "expected some \\p{L}-style patterns in the models"
    for pattern in unchecked:
        assert re.search(r"\\p\{[LMNPSZ]\}", pattern), pattern


def test_autoscaling_requests_are_validated_too() -> None:
    request = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": "endpoint/e/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:InstanceCount",
        "MinCapacity": 1,
        "MaxCapacity": 2,
    }
    (problem,) = _problems("application-autoscaling", "RegisterScalableTarget", request)
    assert problem.startswith("ScalableDimension: 'sagemaker:variant:InstanceCount' is not one of the ")


def test_generated_names_are_valid_and_bounded() -> None:
    name = unique_name("fleetcast-" + "very/long_prefix." * 10)
    assert len(name) <= 63
    validate_request("sagemaker", "CreateEndpoint", {"EndpointName": name, "EndpointConfigName": name})


def test_bucket_names_are_checked() -> None:
    with pytest.raises(LaunchError, match="not a valid S3 bucket name"):
        Layout("My_Bucket", "demo")
    assert Layout("fleetcast-test", "/team/demo/").models == "s3://fleetcast-test/team/demo/models/"
    assert Layout("fleetcast-test", "").raw == "s3://fleetcast-test/raw/"


def test_the_cli_rejects_bad_values_before_sending(cli, names) -> None:
    code, out, err = cli("train", *names.common, "--job-name", "bad name!", "--instance-type", "ml.bogus")
    assert code == 2
    assert out == ""
    assert "TrainingJobName: 'bad name!' does not match pattern" in err
    assert "ResourceConfig.InstanceType: 'ml.bogus' is not one of the" in err
