"""Each command against a moto server: what it recorded (read back with describe_*) has the right fields."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from fleetcast.model import manifest
from fleetcast.paths import SageMakerPaths
from launch.train import METRIC_DEFINITIONS

# Real server processes (or the aws CLI and a moto server) start here: not for `make test-fast`.
pytestmark = pytest.mark.slow

PROGRESS_LINE = "trained 340/1000 customers, 24.1 models/s, 2 failed, 5 skipped, median sMAPE 12.3%"


def _put_customers(clients, names, count: int) -> None:
    s3 = clients["s3"]
    s3.create_bucket(Bucket=names.bucket)
    for index in range(count):
        body = f"customer_id,timestamp,consumption\n{index},2022-01-01,1.0\n"
        s3.put_object(Bucket=names.bucket, Key=f"{names.prefix}/customers/{index}.csv", Body=body.encode())


def test_upload_puts_the_csv_under_raw(cli, clients, names, tmp_path: Path) -> None:
    raw = tmp_path / "consumption.csv"
    raw.write_text("customer_id,timestamp,consumption\n7,2022-01-01,1.5\n")
    code, _, err = cli(
        "upload", "--create-bucket", "--file", str(raw), "--bucket", names.bucket, "--prefix", "demo"
    )
    assert code == 0, err
    body = clients["s3"].get_object(Bucket=names.bucket, Key="demo/raw/consumption.csv")
    assert body["ContentType"] == "text/csv"
    assert body["Body"].read() == raw.read_bytes()
    assert f"s3://{names.bucket}/demo/raw/consumption.csv" in err


def test_upload_can_generate_the_synthetic_data(cli, clients, names) -> None:
    code, _, err = cli(
        "upload", "--create-bucket", "--generate", "3", "--rows-per-customer", "20", *names.common
    )
    assert code == 0, err
    (obj,) = clients["s3"].list_objects_v2(Bucket=names.bucket, Prefix="demo/raw/")["Contents"]
    assert obj["Key"] == "demo/raw/synthetic-3-customers-seed42.csv"
    text = clients["s3"].get_object(Bucket=names.bucket, Key=obj["Key"])["Body"].read().decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 3 * 20
    assert {row["customer_id"] for row in rows} and set(rows[0]) == {
        "customer_id",
        "timestamp",
        "consumption",
    }


def test_process_runs_the_split_step_from_raw_to_customers(cli, clients, names) -> None:
    code, _, err = cli(
        "process",
        *names.common,
        "--job-name",
        "split-1",
        "--instance-type",
        "ml.m5.large",
        "--instance-count",
        "1",
    )
    assert code == 0, err
    job = clients["sagemaker"].describe_processing_job(ProcessingJobName="split-1")
    app = job["AppSpecification"]
    assert app["ImageUri"] == names.image
    assert app["ContainerEntrypoint"] == ["fleetcast", "split"]
    platform = SageMakerPaths.from_env({})  # the job's container: the platform's own /opt/ml
    input_path, output_path, reports_path = (
        path.as_posix()
        for path in (
            platform.processing_input_dir,
            platform.processing_output_dir,
            platform.processing_reports_dir,
        )
    )
    assert app["ContainerArguments"] == [
        "--input",
        input_path,
        "--out",
        output_path,
        "--reports",
        reports_path,
    ]
    (source,) = job["ProcessingInputs"]
    assert source["S3Input"]["S3Uri"] == f"s3://{names.bucket}/demo/raw/"
    assert source["S3Input"]["LocalPath"] == input_path
    assert source["S3Input"]["S3DataDistributionType"] == "FullyReplicated"
    output, reports = job["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["S3Uri"] == f"s3://{names.bucket}/demo/customers/"
    assert output["S3Output"]["LocalPath"] == output_path
    assert reports["S3Output"]["S3Uri"] == f"s3://{names.bucket}/demo/reports/split/"
    assert reports["S3Output"]["LocalPath"] == reports_path
    assert job["RoleArn"] == names.role


def test_process_sizes_the_cluster(cli, names, json_documents) -> None:
    # moto 5.2 does not keep ProcessingResources, so the cluster is checked in the exact request instead.
    code, out, _ = cli(
        "process", *names.common, "--instance-type", "ml.m5.4xlarge", "--volume-size-gb", "50", "--dry-run"
    )
    assert code == 0
    (document,) = json_documents(out)
    cluster = document["request"]["ProcessingResources"]["ClusterConfig"]
    assert cluster == {"InstanceCount": 1, "InstanceType": "ml.m5.4xlarge", "VolumeSizeInGB": 50}
    assert re.fullmatch(r"fleetcast-demo-split-\d{8}-\d{6}", document["request"]["ProcessingJobName"])
    assert (
        document["request"]["ProcessingInputs"][0]["S3Input"]["S3DataDistributionType"] == "FullyReplicated"
    )

    code, out, _ = cli(
        "process", *names.common, "--instance-count", "3", "--shard-input", "--buckets", "64", "--dry-run"
    )
    assert code == 0
    (document,) = json_documents(out)
    request = document["request"]
    assert request["ProcessingInputs"][0]["S3Input"]["S3DataDistributionType"] == "ShardedByS3Key"
    assert request["AppSpecification"]["ContainerArguments"][-2:] == ["--buckets", "64"]
    assert request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 3


def test_train_shards_customers_and_checkpoints_into_the_mme_prefix(cli, clients, names) -> None:
    _put_customers(clients, names, 5)
    code, _, err = cli(
        "train",
        *names.common,
        "--job-name",
        "train-1",
        "--instance-count",
        "3",
        "--instance-type",
        "ml.c5.2xlarge",
        "-H",
        "seasonality_mode=multiplicative",
        "-H",
        "holdout_days=28",
        "--spot",
        "--max-wait",
        "7200",
        "--max-runtime-seconds",
        "3600",
    )
    assert code == 0, err
    job = clients["sagemaker"].describe_training_job(TrainingJobName="train-1")
    (channel,) = job["InputDataConfig"]  # no previous manifest yet: no manifest channel
    assert channel["ChannelName"] == "train"
    source = channel["DataSource"]["S3DataSource"]
    assert source["S3DataDistributionType"] == "ShardedByS3Key"
    assert source["S3Uri"] == f"s3://{names.bucket}/demo/customers/"
    assert job["ResourceConfig"]["InstanceCount"] == 3
    assert job["ResourceConfig"]["InstanceType"] == "ml.c5.2xlarge"
    assert job["CheckpointConfig"]["S3Uri"] == f"s3://{names.bucket}/demo/models/train-1/"  # the run's own
    assert job["OutputDataConfig"]["S3OutputPath"] == f"s3://{names.bucket}/demo/output/"
    assert job["HyperParameters"] == {"seasonality_mode": "multiplicative", "holdout_days": "28"}
    assert job["AlgorithmSpecification"]["TrainingImage"] == names.image
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    # moto answers MetricDefinitions with a canned list; the sent ones are checked from the dry run.


def test_train_resumes_from_the_manifest_and_publishes_the_run_when_it_succeeds(
    cli, clients, names, tmp_path, monkeypatch
):
    _put_customers(clients, names, 2)
    s3 = clients["s3"]
    models = f"{names.prefix}/models"

    def put_manifest(key: str, rows: list[manifest.ManifestEntry]) -> None:
        path, _ = manifest.write_manifest(tmp_path / "upload.csv.gz", rows)
        s3.upload_file(str(path), names.bucket, key)

    def published() -> dict[str, str]:
        body = s3.get_object(Bucket=names.bucket, Key=f"{models}/manifest.csv.gz")["Body"]
        return {e.customer: e.target_model for e in manifest.iter_entries(body)}

    put_manifest(
        f"{models}/manifest.csv.gz", [manifest.entry_for(c, "old", "d", "s", "m", None) for c in "01"]
    )
    # moto completes a job at once without running it: this plays the job's hosts, which leave their host
    # manifests in the run's folder once the job has started.
    import launch.train

    start = launch.train.start_training

    def start_and_run(aws, layout, request):
        name = start(aws, layout, request)
        if name == "train-2":
            for host, customer in (("algo-1", "1"), ("algo-2", "2")):
                row = manifest.entry_for(customer, "train-2", "e", "s", "m", None)
                put_manifest(f"{models}/train-2/manifest-{host}.csv.gz", [row])
        return name

    monkeypatch.setattr(launch.train, "start_training", start_and_run)
    code, _, err = cli("train", *names.common, "--job-name", "train-2", "--wait")
    assert code == 0, err
    job = clients["sagemaker"].describe_training_job(TrainingJobName="train-2")
    _train, previous = job["InputDataConfig"]
    assert previous["ChannelName"] == "manifest"
    source = previous["DataSource"]["S3DataSource"]
    assert source["S3Uri"] == f"s3://{names.bucket}/{models}/manifest.csv.gz"
    assert source["S3DataDistributionType"] == "FullyReplicated"
    assert published() == {"0": "old/0.tar.gz", "1": "train-2/1.tar.gz", "2": "train-2/2.tar.gz"}
    assert "published run train-2: 3 customers" in err
    kept = s3.get_object(Bucket=names.bucket, Key=f"{models}/train-2/manifest.csv.gz")["Body"].read()
    assert manifest.load(manifest.iter_entries(io.BytesIO(kept)))["1"].run == "train-2"

    # A run id names one run: reusing one whose folder holds files is refused before anything starts.
    code, _, err = cli("train", *names.common, "--job-name", "train-4", "-H", "run_id=train-2")
    assert code == 2 and "already holds a run's files" in err
    # -H run_id names the run: its checkpoint prefix, and what is published.
    code, _, err = cli("train", *names.common, "--job-name", "train-3", "-H", "run_id=nightly", "--wait")
    assert code == 2 and "run nightly has no host manifests" in err
    job = clients["sagemaker"].describe_training_job(TrainingJobName="train-3")
    assert job["CheckpointConfig"]["S3Uri"] == f"s3://{names.bucket}/{models}/nightly/"
    assert published()["1"] == "train-2/1.tar.gz"  # nothing was published


def test_train_refuses_more_instances_than_customer_objects(cli, clients, names) -> None:
    _put_customers(clients, names, 2)
    code, _, err = cli("train", *names.common, "--instance-count", "3")
    assert code == 2
    assert "holds 2 object(s), fewer than --instance-count 3" in err
    assert clients["sagemaker"].list_training_jobs()["TrainingJobSummaries"] == []


def test_train_rejects_unknown_hyperparameters_and_max_wait_without_spot(cli, names) -> None:
    code, _, err = cli("train", *names.common, "-H", "seasonalty_mode=additive", "--dry-run")
    assert code == 2
    assert "unknown hyperparameter 'seasonalty_mode'" in err
    code, _, err = cli("train", *names.common, "-H", "holdout_days=soon", "--dry-run")
    assert (code, "hyperparameter holdout_days='soon': is not a valid value" in err) == (2, True)
    code, _, err = cli("train", *names.common, "--max-wait", "100", "--dry-run")
    assert (code, "--max-wait only applies with --spot" in err) == (2, True)


def test_deploy_creates_a_multi_model_endpoint_with_autoscaling(cli, clients, names) -> None:
    code, _, err = cli(
        "deploy",
        *names.common,
        "--instance-type",
        "ml.c5.xlarge",
        "--instance-count",
        "2",
        "--max-instances",
        "6",
        "--invocations-per-instance",
        "150",
        "--env",
        "FLEETCAST_SERVER=lean",
    )
    assert code == 0, err
    sagemaker = clients["sagemaker"]
    endpoint = sagemaker.describe_endpoint(EndpointName="fleetcast-demo")
    assert endpoint["EndpointStatus"] == "InService"
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    (variant,) = config["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.c5.xlarge", 2)
    model = sagemaker.describe_model(ModelName=variant["ModelName"])
    container = model["PrimaryContainer"]
    assert container["Mode"] == "MultiModel"
    assert container["ModelDataUrl"] == f"s3://{names.bucket}/demo/models/"
    assert container["Image"] == names.image
    assert container["Environment"] == {"FLEETCAST_SERVER": "lean"}
    assert model["ExecutionRoleArn"] == names.role

    scaling = clients["application-autoscaling"]
    (target,) = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert target["ResourceId"] == "endpoint/fleetcast-demo/variant/AllTraffic"
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 6)
    (policy,) = scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 150.0
    metric = tracking["PredefinedMetricSpecification"]["PredefinedMetricType"]
    assert metric == "SageMakerVariantInvocationsPerInstance"

    # A second deploy of the same endpoint is refused before anything new is created.
    models_before = sagemaker.list_models()["Models"]
    code, _, err = cli("deploy", *names.common)
    assert code == 2
    assert "already exists (InService): use `update`" in err
    assert sagemaker.list_models()["Models"] == models_before


def test_teardown_deletes_endpoint_config_model_and_scaling_target(cli, clients, names) -> None:
    assert cli("deploy", *names.common, "--max-instances", "3")[0] == 0
    code, _, err = cli("teardown", "--prefix", names.prefix, "--autoscaling")
    assert code == 0, err
    sagemaker = clients["sagemaker"]
    assert sagemaker.list_endpoints()["Endpoints"] == []
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert sagemaker.list_models()["Models"] == []
    scaling = clients["application-autoscaling"]
    assert scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []


def test_wait_and_status_read_the_real_api(cli, clients, names) -> None:
    # A job of a prefix whose job names contain this one's ("fleetcast-demo-train-b-train-<time>") must not
    # be picked. (moto lists jobs oldest first, ignoring SortOrder, so that one is started first here.)
    other = [arg if arg != names.prefix else "demo-train-b" for arg in names.common]
    _put_customers(clients, SimpleNamespace(bucket=names.bucket, prefix="demo-train-b"), 2)
    assert cli("train", *other, "--instance-count", "2")[0] == 0
    _put_customers(clients, names, 2)
    assert cli("train", *names.common, "--instance-count", "2")[0] == 0
    # No name: the newest training job of the prefix.
    code, out, _ = cli("wait", "training", "--prefix", names.prefix, "--poll-seconds", "0")
    assert code == 0
    assert re.search(r"training fleetcast-demo-train-\d{8}-\d{6}: Completed", out)
    assert f"models: s3://{names.bucket}/demo/models/" in out
    assert cli("deploy", *names.common)[0] == 0
    code, out, _ = cli("status", "endpoint", "--prefix", names.prefix)
    assert code == 0
    assert "endpoint fleetcast-demo: InService" in out


def test_an_aws_error_is_reported_without_a_traceback(cli, moto) -> None:
    code, _, err = cli("status", "training", "no-such-job")
    assert code == 1
    assert err.startswith("AWS refused DescribeTrainingJob: ")


DRY_RUNS = {
    "upload": ["upload", "--create-bucket", "--file", "{csv}"],
    "process": ["process"],
    "train": ["train", "--spot"],
    "deploy": ["deploy", "--max-instances", "4"],
    "update": ["update"],
    "invoke": ["invoke", "--customer", "7", "--customer", "8", "--period", "14"],
    "teardown": ["teardown", "--autoscaling"],
}
DRY_RUN_OPERATIONS = {
    "upload": ["CreateBucket", "PutObject"],
    "process": ["CreateProcessingJob"],
    "train": ["CreateTrainingJob"],
    "deploy": [
        "CreateModel",
        "CreateEndpointConfig",
        "CreateEndpoint",
        "RegisterScalableTarget",
        "PutScalingPolicy",
    ],
    "update": ["CreateModel", "CreateEndpointConfig", "UpdateEndpoint"],
    "invoke": ["InvokeEndpoint", "InvokeEndpoint"],
    "teardown": ["DeregisterScalableTarget", "DeleteEndpoint"],
}


@pytest.mark.parametrize("command", sorted(DRY_RUNS))
def test_dry_run_prints_the_requests_and_creates_nothing(
    command, cli, clients, names, json_documents, tmp_path: Path
) -> None:
    raw = tmp_path / "raw.csv"
    raw.write_text("customer_id,timestamp,consumption\n")
    argv = [part.format(csv=raw) for part in DRY_RUNS[command]]
    code, out, err = cli(*argv, *names.common, "--dry-run")
    assert code == 0, err
    documents = json_documents(out)
    assert [doc["operation"] for doc in documents] == DRY_RUN_OPERATIONS[command]
    assert clients["s3"].list_buckets()["Buckets"] == []
    sagemaker = clients["sagemaker"]
    assert sagemaker.list_processing_jobs()["ProcessingJobSummaries"] == []
    assert sagemaker.list_training_jobs()["TrainingJobSummaries"] == []
    assert sagemaker.list_models()["Models"] == []
    assert sagemaker.list_endpoints()["Endpoints"] == []
    assert (
        clients["application-autoscaling"].describe_scalable_targets(ServiceNamespace="sagemaker")[
            "ScalableTargets"
        ]
        == []
    )


@pytest.mark.parametrize("command", sorted(DRY_RUNS))
def test_dry_run_needs_no_network_and_no_credentials(
    command, cli, names, monkeypatch, tmp_path: Path
) -> None:
    # Nothing listens on port 9 and there are no credentials: any attempt to send would fail loudly.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    raw = tmp_path / "raw.csv"
    raw.write_text("customer_id,timestamp,consumption\n")
    argv = [part.format(csv=raw) for part in DRY_RUNS[command]]
    code, out, err = cli(*argv, *names.common, "--dry-run")
    assert code == 0, err
    assert '"operation"' in out


def test_dry_run_prints_the_exact_training_request(cli, names, json_documents) -> None:
    code, out, _ = cli("train", *names.common, "--job-name", "train-9", "--instance-count", "4", "--dry-run")
    assert code == 0
    (document,) = json_documents(out)
    assert document["service"] == "sagemaker"
    request = document["request"]
    assert request["TrainingJobName"] == "train-9"
    assert request["ResourceConfig"]["InstanceCount"] == 4
    source = request["InputDataConfig"][0]["DataSource"]["S3DataSource"]
    assert source["S3DataDistributionType"] == "ShardedByS3Key"
    assert request["CheckpointConfig"]["S3Uri"] == f"s3://{names.bucket}/demo/models/train-9/"
    assert request["CheckpointConfig"]["LocalPath"] == SageMakerPaths.from_env({}).checkpoints_dir.as_posix()
    assert "MaxWaitTimeInSeconds" not in request["StoppingCondition"]
    metrics = request["AlgorithmSpecification"]["MetricDefinitions"]
    assert metrics == METRIC_DEFINITIONS
    by_name = {metric["Name"]: re.search(metric["Regex"], PROGRESS_LINE) for metric in metrics}
    assert by_name["fleet:customers_processed"].group(1) == "340"
    assert by_name["fleet:median_smape"].group(1) == "12.3"


def test_teardown_all_versions_removes_what_updates_left(cli, clients, names) -> None:
    assert cli("deploy", *names.common)[0] == 0
    sagemaker = clients["sagemaker"]
    # An earlier version of this endpoint (as `update` leaves them) and another endpoint's model.
    for model in ("fleetcast-demo-20200101-000000", "fleetcast-demo2-20200101-000000"):
        sagemaker.create_model(
            ModelName=model,
            ExecutionRoleArn=names.role,
            PrimaryContainer={
                "Image": names.image,
                "Mode": "MultiModel",
                "ModelDataUrl": "s3://b-1/demo/models/",
            },
        )
    sagemaker.create_endpoint_config(
        EndpointConfigName="fleetcast-demo-20200101-000000",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "fleetcast-demo-20200101-000000",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    code, _, err = cli("teardown", "--prefix", names.prefix, "--all-versions")
    assert code == 0, err
    assert "deleted model fleetcast-demo-20200101-000000" in err
    assert [m["ModelName"] for m in sagemaker.list_models()["Models"]] == ["fleetcast-demo2-20200101-000000"]
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert sagemaker.list_endpoints()["Endpoints"] == []


def test_a_missing_region_is_a_clear_error(cli, moto, monkeypatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    code, _, err = cli("status", "endpoint", "--prefix", "demo")
    assert code == 2
    assert "no AWS region: pass --region or set AWS_REGION" in err
    code, _, _ = cli("status", "endpoint", "--prefix", "demo", "--region", "us-east-1")
    assert code == 1  # the region flag works: moto answered (the endpoint does not exist)


def test_aws_region_alone_is_enough(cli, moto, monkeypatch) -> None:
    """The walkthrough exports AWS_REGION, which boto3 itself does not read."""
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    code, _, err = cli("status", "endpoint", "--prefix", "demo")
    assert code == 1, err  # moto answered (the endpoint does not exist): the region was found
    assert "no AWS region" not in err


def test_runs_as_python_dash_m_launch_from_the_repo_root() -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    argv = [
        sys.executable,
        "-m",
        "launch",
        "invoke",
        "--prefix",
        "demo",
        "--bucket",
        "b-1",
        "--customer",
        "7",
    ]
    result = subprocess.run(
        [*argv, "--dry-run"], cwd=root, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    request = json.loads(result.stdout)["request"]
    assert request["TargetModel"] == "RUN/7.tar.gz"  # the manifest in S3 is not read in a dry run
    assert request["Body"] == {"period": 7}


def test_update_dry_run_needs_what_it_cannot_read(cli, names) -> None:
    code, _, err = cli("update", "--image", names.image, "--prefix", names.prefix, "--dry-run")
    assert code == 2
    assert "a dry run reads nothing: pass --role, --bucket and --prefix to update" in err


def test_endpoint_commands_need_a_name_or_prefix(cli, names) -> None:
    for argv in (["teardown"], ["invoke", "--customer", "7"], ["update", "--image", names.image]):
        code, _, err = cli(*argv, "--dry-run")
        assert code == 2, argv
        assert "pass --endpoint-name, or the --prefix the endpoint was deployed with" in err


def test_invoke_prints_tables_and_keeps_going_past_a_bad_answer(cli, moto, clients, names, tmp_path) -> None:
    # moto's sagemaker-runtime answers from a queue we fill (one answer per distinct request headers/body),
    # so this is a real boto3 InvokeEndpoint over HTTP; the third customer gets moto's non-JSON default.
    answers = [
        {"customer": customer, "forecast": [{"ds": "2023-01-01T00:00:00", "yhat": value}]}
        for customer, value in (("7", 1.5), ("8", 2.25))
    ]
    results = {"results": [{"Body": json.dumps(a), "ContentType": "application/json"} for a in answers]}
    request = urllib.request.Request(
        f"{moto}/moto-api/static/sagemaker/endpoint-results",
        data=json.dumps(results).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
    # TargetModel comes from the fleet manifest under the prefix's models/.
    rows = [manifest.entry_for(c, "job-1" if c != "9" else "job-2", "d", "s", "m", None) for c in "789"]
    path, _ = manifest.write_manifest(tmp_path / "manifest.csv.gz", rows)
    clients["s3"].create_bucket(Bucket=names.bucket)
    clients["s3"].upload_file(str(path), names.bucket, "demo/models/manifest.csv.gz")
    customers = ["--customer", "7", "--customer", "8", "--customer", "9"]
    code, out, err = cli("invoke", "--prefix", "demo", "--bucket", names.bucket, *customers)
    assert code == 1
    assert "customer 7: 1 step from fleetcast-demo" in out and "1.50" in out
    assert "customer 8: 1 step from fleetcast-demo" in out and "2.25" in out
    assert "error: customer 9: job-2/9.tar.gz: the endpoint answered non-JSON: b'body'" in err
    code, _, err = cli("invoke", "--prefix", "demo", "--bucket", names.bucket, "--customer", "10")
    assert code == 1 and "customer 10 has no model in the fleet manifest" in err
