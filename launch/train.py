"""`train`: one Training job over N instances, customers/ sharded across them, models/<run>/ as checkpoints.

The run id is the job's name (or `-H run_id=...`). The `train` channel uses ShardedByS3Key, so each instance
receives about 1/N of the per-customer objects; CheckpointConfig points at the run's own folder
models/<run>/, below the prefix the multi-model endpoint serves from, so every <customer>.tar.gz a host
writes is servable as `<run>/<customer>.tar.gz` as soon as SageMaker syncs it, and SageMaker restores only
this run's archives to an instance (none for a new run, what it had written for a spot restart). The
previous fleet manifest, models/manifest.csv.gz, is the `manifest` channel (FullyReplicated), from which
each host keeps every unchanged customer's version. With --wait, a job that succeeds is published:
`fleetcast manifest merge` merges its hosts' manifests into models/manifest.csv.gz.
"""

from __future__ import annotations

import argparse
from typing import Any

from fleetcast.model.manifest import MANIFEST_NAME, ManifestError
from fleetcast.models_prefix import S3Prefix, merge_run
from fleetcast.paths import FULLY_REPLICATED, MANIFEST_CHANNEL, SHARDED_BY_S3_KEY
from fleetcast.training.config import HYPERPARAMETERS, ConfigError, JobSettings, parse_hyperparameters
from fleetcast.training.log_metrics import METRIC_DEFINITIONS
from launch.common import (
    JOB_PATHS,
    S3_PREFIX,
    Aws,
    JobSpec,
    LaunchError,
    Layout,
    add_job_arguments,
    aws_from_args,
    has_manifest,
    job_from_args,
    note,
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


def run_of(job: JobSpec, hyperparameters: dict[str, str]) -> str:
    """The run id `train` will use: `-H run_id`, else the job's name (TRAINING_JOB_NAME in the container)."""
    return hyperparameters.get("run_id") or job.name


def channel(name: str, uri: str, distribution: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {"S3DataType": S3_PREFIX, "S3Uri": uri, "S3DataDistributionType": distribution}
        },
        "ContentType": "text/csv",
        "CompressionType": "None",
        "InputMode": "File",
    }


def training_request(
    job: JobSpec,
    *,
    hyperparameters: dict[str, str],
    spot: bool,
    max_wait_seconds: int | None,
    output_path: str | None,
    previous_manifest: bool = True,
) -> dict[str, Any]:
    """The CreateTrainingJob request; `previous_manifest`: models/manifest.csv.gz exists (else a channel
    matching no object would fail the job at start)."""
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
        "InputDataConfig": [channel(CHANNEL, job.layout.customers, SHARDED_BY_S3_KEY)],
        "OutputDataConfig": {"S3OutputPath": output_path or job.layout.output},
        "CheckpointConfig": {
            "S3Uri": job.layout.run_models(run_of(job, hyperparameters)),
            "LocalPath": CHECKPOINT_PATH,
        },
        "ResourceConfig": {
            "InstanceType": job.instance_type,
            "InstanceCount": job.instance_count,
            "VolumeSizeInGB": job.volume_gb,
        },
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": spot,
    }
    if previous_manifest:
        manifest_uri = job.layout.models + MANIFEST_NAME
        request["InputDataConfig"].append(channel(MANIFEST_CHANNEL, manifest_uri, FULLY_REPLICATED))
    return request


def check_new_run(aws: Aws, layout: Layout, run: str) -> None:
    """A run id names one run: a folder that already holds objects would have them overwritten."""
    if aws.dry_run:
        return
    listing = aws.send(
        "s3",
        "ListObjectsV2",
        {"Bucket": layout.bucket, "Prefix": layout.key("models", f"{run}/"), "MaxKeys": 1},
    )
    if listing.get("KeyCount", 0):
        raise LaunchError(
            f"{layout.run_models(run)} already holds a run's files: a run id names one run, whose archives "
            "are never overwritten; choose another -H run_id (or job name)"
        )


def publish(aws: Aws, layout: Layout, run: str) -> int:
    """`fleetcast manifest merge` for the finished run, in S3."""
    store = S3Prefix(layout.bucket, layout.key("models").rstrip("/"), aws.client("s3"))
    try:
        result = merge_run(store, run)
    except ManifestError as exc:
        raise LaunchError(f"the job succeeded but its run could not be published: {exc}") from None
    note(
        f"published run {run}: {result.rows} customers in {result.location} ({result.counts.get('added', 0)} "
        f"new, {result.counts.get('updated', 0)} updated, {result.counts.get('kept', 0)} kept)"
    )
    return 0


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
        f"{resources['InstanceCount']} x {resources['InstanceType']}, {layout.customers} -> "
        f"{request['CheckpointConfig']['S3Uri']}"
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
    p.add_argument(
        "--spot", action="store_true", help="managed spot training (a restart resumes from models/<run>/)"
    )
    p.add_argument("--max-wait", type=int, default=None, help="with --spot: seconds to wait for capacity+run")
    p.add_argument(
        "--output-path", default=None, help="S3 URI for model.tar.gz/output.tar.gz (default output/)"
    )
    add_job_arguments(p, kind="training", instance_count=2, max_runtime_seconds=24 * 3600)

    def run(args: argparse.Namespace) -> int:
        aws = aws_from_args(args)
        job = job_from_args(args, "training")
        hyperparameters = hyperparameters_from(args.hyperparameter)
        request = training_request(
            job,
            hyperparameters=hyperparameters,
            spot=args.spot,
            max_wait_seconds=args.max_wait,
            output_path=args.output_path,
        )
        validate_request("sagemaker", "CreateTrainingJob", request)  # before anything is read from S3
        check_new_run(aws, job.layout, run_of(job, hyperparameters))
        if not has_manifest(aws, job.layout):
            request["InputDataConfig"] = [
                c for c in request["InputDataConfig"] if c["ChannelName"] == CHANNEL
            ]
        code = wait_if_asked(aws, args, "training", start_training(aws, job.layout, request))
        if code == 0 and args.wait and not aws.dry_run:
            return publish(aws, job.layout, run_of(job, hyperparameters))
        return code

    p.set_defaults(run=run)
