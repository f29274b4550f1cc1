"""`train`: one Training job over N instances, customers/ sharded across them, models/ as checkpoints.

The `train` channel uses ShardedByS3Key, so each instance receives about 1/N of the per-customer objects;
CheckpointConfig points at models/, the same prefix the multi-model endpoint serves from, so every
<customer>.tar.gz a host writes is servable as soon as SageMaker syncs it.
"""

from __future__ import annotations

import argparse
from typing import Any

from fleetcast.training.config import HYPERPARAMETERS, ConfigError, JobSettings, parse_hyperparameters
from fleetcast.training.log_metrics import METRIC_DEFINITIONS
from launch.common import (
    JOB_PATHS,
    Aws,
    JobSpec,
    LaunchError,
    Layout,
    add_job_arguments,
    aws_from_args,
    job_from_args,
    parse_key_values,
    start_job,
    validate_request,
    wait_if_asked,
)

CHANNEL = JobSettings.channel  # the channel `train` reads by default, and the one launch feeds
CHECKPOINT_PATH = JOB_PATHS.checkpoints_dir.as_posix()


def hyperparameters_from(pairs: list[str]) -> dict[str, str]:
    """--hyperparameter KEY=VALUE pairs, checked by the job's own parser: a typo or a bad value fails
    here, not after an instance start-up."""
    values = parse_key_values(pairs, "--hyperparameter")
    try:
        parse_hyperparameters(values)
    except ConfigError as exc:
        raise LaunchError(str(exc)) from None
    channel = values.get("channel", CHANNEL)
    if channel != CHANNEL:
        raise LaunchError(f"launch always feeds the {CHANNEL!r} channel; hyperparameter channel={channel!r}")
    return values  # SageMaker hyperparameters are strings on the wire, and these already are


def training_request(
    job: JobSpec,
    *,
    hyperparameters: dict[str, str],
    spot: bool,
    max_wait_seconds: int | None,
    output_path: str | None,
) -> dict[str, Any]:
    max_runtime_seconds = job.max_runtime_seconds
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
        "TrainingJobName": job.name,
        "RoleArn": job.role,
        "AlgorithmSpecification": {
            "TrainingImage": job.image,
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
                        "S3Uri": job.layout.customers,
                        "S3DataDistributionType": "ShardedByS3Key",
                    }
                },
                "ContentType": "text/csv",
                "CompressionType": "None",
                "InputMode": "File",
            }
        ],
        "OutputDataConfig": {"S3OutputPath": output_path or job.layout.output},
        "CheckpointConfig": {"S3Uri": job.layout.models, "LocalPath": CHECKPOINT_PATH},
        "ResourceConfig": {
            "InstanceType": job.instance_type,
            "InstanceCount": job.instance_count,
            "VolumeSizeInGB": job.volume_gb,
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
    resources = request["ResourceConfig"]
    summary = (
        f"{resources['InstanceCount']} x {resources['InstanceType']}, {layout.customers} -> {layout.models}"
    )
    return start_job(aws, "training", "CreateTrainingJob", request, summary)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="Training job: customers/ sharded over N instances, models/ as output")
    p.add_argument(
        "--hyperparameter",
        "-H",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"repeatable, e.g. -H seasonality_mode=multiplicative; keys: {', '.join(HYPERPARAMETERS)}",
    )
    p.add_argument("--spot", action="store_true", help="managed spot training (resumes from models/)")
    p.add_argument("--max-wait", type=int, default=None, help="with --spot: seconds to wait for capacity+run")
    p.add_argument(
        "--output-path", default=None, help="S3 URI for model.tar.gz/output.tar.gz (default output/)"
    )
    add_job_arguments(p, kind="training", instance_count=2, max_runtime_seconds=24 * 3600)

    def run(args: argparse.Namespace) -> int:
        aws = aws_from_args(args)
        job = job_from_args(args, "training")
        request = training_request(
            job,
            hyperparameters=hyperparameters_from(args.hyperparameter),
            spot=args.spot,
            max_wait_seconds=args.max_wait,
            output_path=args.output_path,
        )
        return wait_if_asked(aws, args, "training", start_training(aws, job.layout, request))

    p.set_defaults(run=run)
