"""`pipeline`: the whole flow as one SageMaker Pipeline, split -> train -> forecast, and a run of it.

Each step's Arguments are the request the single-step command sends (`process`, `train`, `forecast`),
with the cluster and the data prefix turned into pipeline parameters and each step's input taken from
the step before it with a `Get` on its properties:

    Split     Processing  raw/ -> customers/
    Train     Training    Steps.Split ... Outputs['customers'].S3Output.S3Uri, ShardedByS3Key; the run
                          is the execution (`run_id` = its id), CheckpointConfig -> models/<run>/; the
                          fleet manifest as the `manifest` channel, so unchanged customers are kept
    Publish   Processing  after Train: `fleetcast manifest merge` makes the run's versions the fleet
                          manifest's (models/manifest.csv.gz), then lists the archives it names in a
                          SageMaker manifest file, forecast-inputs/<run>/models.manifest
    Forecast  Processing  after Publish: that file's archives, ShardedByS3Key -> forecasts/<run>/

The definition is checked (`pipeline_definition`) before anything is sent; then the pipeline is
created, or updated when it exists, and an execution is started (`--no-start` skips it; `--wait`
follows it, as `python -m launch wait pipeline` does later).

The Train step's `manifest` channel must match an object, or the training job fails at start: before a
first execution, where `models/` under the data prefix is still empty, `pipeline` writes an empty fleet
manifest there (the first run then trains every customer, and Publish fills it). A `models/` that holds
archives but no fleet manifest (a layout from before manifests) is refused with what to do.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import uuid
from pathlib import Path
from typing import Any

from fleetcast.model import manifest
from fleetcast.paths import MANIFEST_CHANNEL
from launch import forecast, process, train
from launch.common import (
    Aws,
    InvalidRequestError,
    JobSpec,
    LaunchError,
    Layout,
    add_common_arguments,
    aws_from_args,
    base_name,
    has_manifest,
    layout_from_args,
    note,
)
from launch.pipeline_definition import (
    STEP_KINDS,
    VERSION,
    arguments_problems,
    definition_problems,
    get,
    join,
    parameter,
)

SPLIT, TRAIN, PUBLISH, FORECAST = "Split", "Train", "Publish", "Forecast"
RUN = get("Execution.PipelineExecutionId")  # the training run id: one per execution, known to every step
PUBLISH_INSTANCE_TYPE = "ml.m5.large"  # merging manifests streams rows: the smallest instance will do
DATA_PREFIX = "DataPrefix"
DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"
# Publish lists the archives the fleet manifest names here; Forecast reads them, dealt out to its instances.
FORECAST_INPUT = join(
    get(f"Parameters.{DATA_PREFIX}"), forecast.INPUTS_AREA, RUN, forecast.INPUT_MANIFEST_NAME
)


def _job(args: argparse.Namespace, layout: Layout) -> JobSpec:
    """A stand-in job for building each step's request with the single-step commands' own functions."""
    return JobSpec(
        name="pipeline-step",  # removed: the service names each step's job
        image=args.image,
        role=args.role,
        layout=layout,
        instance_type=DEFAULT_INSTANCE_TYPE,
        instance_count=1,
        volume_gb=args.volume_size_gb,
        max_runtime_seconds=args.max_runtime_seconds,
    )


def _parameters(args: argparse.Namespace, layout: Layout) -> list[dict[str, Any]]:
    return [
        parameter(DATA_PREFIX, "String", f"s3://{layout.bucket}/{layout.prefix}".rstrip("/")),
        parameter("SplitInstanceCount", "Integer", args.split_instance_count),
        parameter("SplitInstanceType", "String", args.split_instance_type),
        parameter("TrainInstanceCount", "Integer", args.train_instance_count),
        parameter("TrainInstanceType", "String", args.train_instance_type),
        parameter("ForecastInstanceCount", "Integer", args.forecast_instance_count),
        parameter("ForecastInstanceType", "String", args.forecast_instance_type),
        parameter("ForecastPeriod", "String", str(args.period)),
    ]


def _area(name: str) -> dict[str, Any]:
    return join(get(f"Parameters.{DATA_PREFIX}"), name)


def _cluster(arguments: dict[str, Any], step: str) -> None:
    config = arguments["ProcessingResources"]["ClusterConfig"]
    config["InstanceCount"] = get(f"Parameters.{step}InstanceCount")
    config["InstanceType"] = get(f"Parameters.{step}InstanceType")


def _without_name(request: dict[str, Any], kind: str) -> dict[str, Any]:
    request.pop(STEP_KINDS[kind].name_member)
    return request


def publish_arguments(job: JobSpec) -> dict[str, Any]:
    """`fleetcast manifest merge` in the image: the run's host manifests merged into the fleet manifest."""
    return {
        "RoleArn": job.role,
        "AppSpecification": {
            "ImageUri": job.image,
            "ContainerEntrypoint": ["fleetcast", "manifest", "merge"],
            "ContainerArguments": [
                "--models",
                _area("models"),
                "--run",
                RUN,
                "--sagemaker-manifest",
                FORECAST_INPUT,
            ],
        },
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": PUBLISH_INSTANCE_TYPE, "VolumeSizeInGB": 1}
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": job.max_runtime_seconds},
    }


def pipeline_definition(args: argparse.Namespace, layout: Layout) -> dict[str, Any]:
    job = _job(args, layout)

    split = _without_name(
        process.processing_request(job, shard_input=False, buckets=args.buckets), "Processing"
    )
    split["ProcessingInputs"][0]["S3Input"]["S3Uri"] = _area("raw")
    split_outputs = {o["OutputName"]: o["S3Output"] for o in split["ProcessingOutputConfig"]["Outputs"]}
    split_outputs["customers"]["S3Uri"] = _area("customers")
    if "reports" in split_outputs:
        split_outputs["reports"]["S3Uri"] = join(get(f"Parameters.{DATA_PREFIX}"), "reports", "split")
    _cluster(split, SPLIT)
    customers_output = "customers"

    hyperparameters = train.hyperparameters_from(args.hyperparameter)
    if "run_id" in hyperparameters:
        raise LaunchError("a pipeline's run id is its execution id; drop -H run_id")
    training = train.training_request(
        job,
        hyperparameters=hyperparameters,
        spot=False,
        max_wait_seconds=None,
        output_path=None,
    )
    training = _without_name(training, "Training")
    training["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = get(
        f"Steps.{SPLIT}.ProcessingOutputConfig.Outputs['{customers_output}'].S3Output.S3Uri"
    )
    training["OutputDataConfig"]["S3OutputPath"] = _area("output")
    training["HyperParameters"]["run_id"] = RUN
    training["CheckpointConfig"]["S3Uri"] = join(get(f"Parameters.{DATA_PREFIX}"), "models", RUN)
    # The fleet manifest under the execution's data prefix (ensure_fleet_manifest makes one exist).
    (previous,) = [c for c in training["InputDataConfig"] if c["ChannelName"] == MANIFEST_CHANNEL]
    previous["DataSource"]["S3DataSource"]["S3Uri"] = join(
        get(f"Parameters.{DATA_PREFIX}"), "models", manifest.MANIFEST_NAME
    )
    training["ResourceConfig"]["InstanceCount"] = get("Parameters.TrainInstanceCount")
    training["ResourceConfig"]["InstanceType"] = get("Parameters.TrainInstanceType")

    batch = forecast.forecast_request(job, period=args.period, input_manifest=FORECAST_INPUT)
    batch = _without_name(batch, "Processing")
    arguments = batch["AppSpecification"]["ContainerArguments"]
    arguments[arguments.index("--period") + 1] = get("Parameters.ForecastPeriod")
    outputs = batch["ProcessingOutputConfig"]["Outputs"]
    outputs[0]["S3Output"]["S3Uri"] = join(get(f"Parameters.{DATA_PREFIX}"), forecast.FORECASTS_AREA, RUN)
    outputs[1]["S3Output"]["S3Uri"] = join(get(f"Parameters.{DATA_PREFIX}"), forecast.REPORTS_AREA, RUN)
    _cluster(batch, FORECAST)

    return {
        "Version": VERSION,
        "Metadata": {},
        "Parameters": _parameters(args, layout),
        "Steps": [
            {"Name": SPLIT, "Type": "Processing", "Arguments": split},
            {"Name": TRAIN, "Type": "Training", "Arguments": training},
            {
                "Name": PUBLISH,
                "Type": "Processing",
                "Arguments": publish_arguments(job),
                "DependsOn": [TRAIN],
            },
            {"Name": FORECAST, "Type": "Processing", "Arguments": batch, "DependsOn": [PUBLISH]},
        ],
    }


def check_definition(definition: dict[str, Any]) -> None:
    problems = definition_problems(definition)
    if not problems:
        problems = arguments_problems(definition)
    if problems:
        raise InvalidRequestError("PipelineDefinition", problems)


def ensure_fleet_manifest(aws: Aws, layout: Layout) -> None:
    """Make models/manifest.csv.gz exist for the Train step's channel: an empty one in an empty models/."""
    if has_manifest(aws, layout):  # (a dry run assumes it does)
        return
    key = layout.key("models", manifest.MANIFEST_NAME)
    listing = aws.send(
        "s3", "ListObjectsV2", {"Bucket": layout.bucket, "Prefix": layout.key("models"), "MaxKeys": 1}
    )
    if listing.get("KeyCount", 0):
        raise LaunchError(
            f"{layout.models} holds models but no {manifest.MANIFEST_NAME}, which the Train step reads: "
            f"publish one first (`fleetcast manifest merge --models {layout.models} --run <run>` for the "
            "run that serves), or train once with `launch train --wait`"
        )
    with tempfile.TemporaryDirectory(prefix="fleetcast-manifest-") as folder:
        empty, _ = manifest.write_manifest(Path(folder) / manifest.MANIFEST_NAME, [])
        body = empty.read_bytes()
    from botocore.exceptions import ClientError

    try:  # only if still absent: a run may publish the first manifest meanwhile, and must not be emptied
        aws.send("s3", "PutObject", {"Bucket": layout.bucket, "Key": key, "Body": body, "IfNoneMatch": "*"})
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") not in (409, 412):
            raise
        note(f"{layout.models}{manifest.MANIFEST_NAME} was published meanwhile: kept")
        return
    note(f"wrote an empty fleet manifest, {layout.models}{manifest.MANIFEST_NAME}: the first run trains all")


def pipeline_exists(aws: Aws, name: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        aws.send("sagemaker", "DescribePipeline", {"PipelineName": name})
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("ResourceNotFound", "ValidationException"):
            return False
        raise
    return True


def upsert_and_start(
    aws: Aws, name: str, role: str, definition: dict[str, Any], *, start: bool
) -> str | None:
    """Create or update the pipeline, then (with `start`) start an execution; returns its ARN."""
    text = json.dumps(definition, separators=(",", ":"))
    description = "fleetcast: split -> train -> publish -> forecast"
    exists = not aws.dry_run and pipeline_exists(aws, name)
    if exists:
        request = {
            "PipelineName": name,
            "PipelineDefinition": text,
            "RoleArn": role,
            "PipelineDescription": description,
        }
        aws.send("sagemaker", "UpdatePipeline", request)
    else:
        request = {
            "PipelineName": name,
            "PipelineDefinition": text,
            "RoleArn": role,
            "PipelineDescription": description,
            "ClientRequestToken": uuid.uuid4().hex,
        }
        aws.send("sagemaker", "CreatePipeline", request)
    if not aws.dry_run:
        note(f"{'updated' if exists else 'created'} pipeline {name} ({len(definition['Steps'])} steps)")
    if not start:
        return None
    started = aws.send(
        "sagemaker", "StartPipelineExecution", {"PipelineName": name, "ClientRequestToken": uuid.uuid4().hex}
    )
    arn = started.get("PipelineExecutionArn")
    if arn:
        note(f"started pipeline execution {arn}")
    return arn


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pipeline", help="SageMaker Pipeline: split -> train -> forecast, created/updated and started"
    )
    p.add_argument("--pipeline-name", default=None, help="default: fleetcast-<prefix>")
    for step, count in ((SPLIT, 1), (TRAIN, 2), (FORECAST, 1)):
        flag = step.lower()
        p.add_argument(f"--{flag}-instance-count", type=int, default=count, help="(a pipeline parameter)")
        p.add_argument(
            f"--{flag}-instance-type", default=DEFAULT_INSTANCE_TYPE, help="(a pipeline parameter)"
        )
    p.add_argument("--period", type=int, default=7, help="forecast steps per customer (a pipeline parameter)")
    p.add_argument("--buckets", type=int, default=0, help="split into N part files of whole customers")
    p.add_argument("--hyperparameter", "-H", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--volume-size-gb", type=int, default=30)
    p.add_argument("--max-runtime-seconds", type=int, default=24 * 3600, help="per step")
    p.add_argument("--no-start", action="store_true", help="create or update the pipeline only")
    p.add_argument("--wait", action="store_true", help="follow the execution; exit non-zero if it fails")
    add_common_arguments(p, needs=("image", "role", "bucket", "prefix"))

    def run(args: argparse.Namespace) -> int:
        for flag in ("split_instance_count", "train_instance_count", "forecast_instance_count"):
            if getattr(args, flag) < 1:
                raise LaunchError(f"--{flag.replace('_', '-')} must be at least 1")
        aws = aws_from_args(args)
        layout = layout_from_args(args)
        definition = pipeline_definition(args, layout)
        check_definition(definition)
        if aws.dry_run:
            print(json.dumps({"PipelineDefinition": definition}, indent=2), file=aws.out, flush=True)
        name = args.pipeline_name or base_name(layout.prefix)
        ensure_fleet_manifest(aws, layout)
        arn = upsert_and_start(aws, name, args.role, definition, start=not args.no_start)
        if not (args.wait and arn):
            return 0
        from launch.status import KINDS, wait_for

        return wait_for(aws.client("sagemaker"), KINDS["pipeline"], arn)

    p.set_defaults(run=run)
