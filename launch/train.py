"""`train`: one Training job over N instances, customers/ sharded across them, models/ as checkpoints.

The `train` channel uses ShardedByS3Key, so each instance receives about 1/N of the per-customer objects;
CheckpointConfig points at models/, the same prefix the multi-model endpoint serves from, so every
<customer>.tar.gz a host writes is servable as soon as SageMaker syncs it.
"""

from __future__ import annotations

import argparse
from typing import Any

from launch.common import (
    Aws,
    LaunchError,
    Layout,
    add_common_arguments,
    aws_from_args,
    job_stem,
    layout_from_args,
    note,
    parse_key_values,
    unique_name,
    validate_request,
)

CHANNEL = "train"
CHECKPOINT_PATH = "/opt/ml/checkpoints"

# The keys `fleetcast train` accepts (fleetcast.training.config.HYPERPARAMETERS; a test keeps the two in
# step). The job fails on any other key, so catching a typo here saves an instance start-up.
HYPERPARAMETERS = frozenset(
    {
        "growth",
        "seasonality_mode",
        "yearly_seasonality",
        "weekly_seasonality",
        "daily_seasonality",
        "changepoint_prior_scale",
        "seasonality_prior_scale",
        "n_changepoints",
        "changepoint_range",
        "interval_width",
        "uncertainty_samples",
        "channel",
        "workers",
        "holdout_days",
        "max_failure_rate",
        "min_rows",
        "progress_seconds",
        "fit_engine",
        "max_rows_per_customer",
    }
)

# Regexes over `train`'s progress lines; the first group is the value. The two line shapes:
#   trained 340/1000 customers, 24.1 models/s, 2 failed, 5 skipped, median sMAPE 12.3%
#   fleet done: 998 trained, 2 failed, 0 skipped of 1000 in 41.2s, 24.3 models/s, median sMAPE 11.9%, ...
METRIC_DEFINITIONS = [
    # Progress lines count customers processed so far (trained, failed or skipped); the final line says
    # how many were trained.
    {"Name": "fleet:customers_processed", "Regex": r"\btrained (\d+)/\d+ customers"},
    {"Name": "fleet:customers_trained", "Regex": r"fleet done: (\d+) trained"},
    {"Name": "fleet:customers_total", "Regex": r"(?:/|skipped of )(\d+)(?: customers,| in )"},
    {"Name": "fleet:customers_failed", "Regex": r"(?:models/s|trained), (\d+) failed"},
    {"Name": "fleet:customers_skipped", "Regex": r"failed, (\d+) skipped"},
    {"Name": "fleet:models_per_second", "Regex": r"(?:customers|s), ([0-9.]+) models/s"},
    {"Name": "fleet:median_smape", "Regex": r"median sMAPE ([0-9.]+)%"},
    {"Name": "fleet:naive_smape", "Regex": r"naive sMAPE ([0-9.]+)%"},
    {"Name": "fleet:seconds", "Regex": r"skipped of \d+ in ([0-9.]+)s,"},
]


def hyperparameters_from(pairs: list[str]) -> dict[str, str]:
    values = parse_key_values(pairs, "--hyperparameter")
    unknown = sorted(set(values) - HYPERPARAMETERS)
    if unknown:
        raise LaunchError(
            f"unknown hyperparameter(s) {', '.join(unknown)}; "
            f"train accepts {', '.join(sorted(HYPERPARAMETERS))}"
        )
    channel = values.get("channel", CHANNEL)
    if channel != CHANNEL:
        raise LaunchError(f"launch always feeds the {CHANNEL!r} channel; hyperparameter channel={channel!r}")
    return values  # SageMaker hyperparameters are strings on the wire, and these already are


def training_request(
    *,
    job_name: str,
    image: str,
    role: str,
    layout: Layout,
    instance_type: str,
    instance_count: int,
    volume_gb: int,
    max_runtime_seconds: int,
    hyperparameters: dict[str, str],
    spot: bool,
    max_wait_seconds: int | None,
    output_path: str | None,
) -> dict[str, Any]:
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": max_runtime_seconds}
    if spot:
        wait = max_wait_seconds if max_wait_seconds is not None else max_runtime_seconds
        if wait < max_runtime_seconds:
            raise LaunchError(
                f"--max-wait {wait} must be at least --max-runtime-seconds {max_runtime_seconds}"
            )
        stopping["MaxWaitTimeInSeconds"] = wait
    elif max_wait_seconds is not None:
        raise LaunchError("--max-wait only applies with --spot")
    request: dict[str, Any] = {
        "TrainingJobName": job_name,
        "RoleArn": role,
        "AlgorithmSpecification": {
            "TrainingImage": image,
            "TrainingInputMode": "File",
            "MetricDefinitions": METRIC_DEFINITIONS,
        },
        "HyperParameters": hyperparameters,
        "InputDataConfig": [
            {
                "ChannelName": CHANNEL,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": layout.customers,
                        "S3DataDistributionType": "ShardedByS3Key",
                    }
                },
                "ContentType": "text/csv",
                "CompressionType": "None",
                "InputMode": "File",
            }
        ],
        "OutputDataConfig": {"S3OutputPath": output_path or layout.output},
        "CheckpointConfig": {"S3Uri": layout.models, "LocalPath": CHECKPOINT_PATH},
        "ResourceConfig": {
            "InstanceType": instance_type,
            "InstanceCount": instance_count,
            "VolumeSizeInGB": volume_gb,
        },
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": spot,
    }
    return request


def check_enough_objects(aws: Aws, layout: Layout, instance_count: int) -> None:
    """ShardedByS3Key with more instances than objects leaves instances without data: refuse early."""
    listing = aws.send(
        "s3",
        "ListObjectsV2",
        {"Bucket": layout.bucket, "Prefix": layout.key("customers"), "MaxKeys": instance_count},
    )
    found = listing.get("KeyCount", 0)
    if found < instance_count:
        raise LaunchError(
            f"{layout.customers} holds {found} object(s), fewer than --instance-count {instance_count}: "
            "run `process` first, or use fewer instances"
        )


def start_training(aws: Aws, layout: Layout, request: dict[str, Any]) -> str:
    validate_request("sagemaker", "CreateTrainingJob", request)  # before the S3 look-up, not after
    if not aws.dry_run:
        check_enough_objects(aws, layout, request["ResourceConfig"]["InstanceCount"])
    aws.send("sagemaker", "CreateTrainingJob", request)
    name = request["TrainingJobName"]
    if not aws.dry_run:
        resources = request["ResourceConfig"]
        note(
            f"started training job {name}: {resources['InstanceCount']} x {resources['InstanceType']}, "
            f"{layout.customers} -> {layout.models}"
        )
    return name


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="Training job: customers/ sharded over N instances, models/ as output")
    p.add_argument("--job-name", default=None, help="default: fleetcast-<prefix>-train-<timestamp>")
    p.add_argument("--instance-type", default="ml.m5.xlarge")
    p.add_argument("--instance-count", type=int, default=2)
    p.add_argument("--volume-size-gb", type=int, default=30)
    p.add_argument("--max-runtime-seconds", type=int, default=24 * 3600)
    p.add_argument(
        "--hyperparameter",
        "-H",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="repeatable, e.g. -H seasonality_mode=multiplicative -H holdout_days=28",
    )
    p.add_argument("--spot", action="store_true", help="managed spot training (resumes from models/)")
    p.add_argument("--max-wait", type=int, default=None, help="with --spot: seconds to wait for capacity+run")
    p.add_argument(
        "--output-path", default=None, help="S3 URI for model.tar.gz/output.tar.gz (default output/)"
    )
    p.add_argument("--wait", action="store_true", help="wait for the job and exit non-zero if it fails")
    add_common_arguments(p, needs=("image", "role", "bucket", "prefix"))

    def run(args: argparse.Namespace) -> int:
        aws, layout = aws_from_args(args), layout_from_args(args)
        request = training_request(
            job_name=args.job_name or unique_name(job_stem(layout.prefix, "train")),
            image=args.image,
            role=args.role,
            layout=layout,
            instance_type=args.instance_type,
            instance_count=args.instance_count,
            volume_gb=args.volume_size_gb,
            max_runtime_seconds=args.max_runtime_seconds,
            hyperparameters=hyperparameters_from(args.hyperparameter),
            spot=args.spot,
            max_wait_seconds=args.max_wait,
            output_path=args.output_path,
        )
        name = start_training(aws, layout, request)
        if args.wait and not aws.dry_run:
            from launch.status import KINDS, wait_for

            return wait_for(aws.client("sagemaker"), KINDS["training"], name)
        return 0

    p.set_defaults(run=run)
