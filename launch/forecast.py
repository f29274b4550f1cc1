"""`forecast`: a Processing job that runs the image's batch forecast, models/ -> forecasts/<job>/.

The models input is a SageMaker manifest file, `forecast-inputs/<job>/models.manifest`, written before
the job from the fleet manifest: it lists only the archive that serves each customer, and SageMaker deals
those archives out to the instances (ShardedByS3Key), so an instance downloads its share of the current
versions, not every version ever trained. Without a fleet manifest (or with `--models-uri`) every
instance receives the whole prefix (FullyReplicated) and forecasts the customers whose id hashes to it
(the job's own rule, `fleetcast.forecast.sources`). Either way each writes `forecasts-<instance>.csv.gz`:
instances never write the same key, and each run writes under its own job name, so last night's forecasts
stay where they were. (In the pipeline, the Publish step writes the manifest file: `fleetcast manifest
merge --sagemaker-manifest`.) AWS does not document whether a manifest file's objects keep their
folders below LocalPath; the job walks the folder and names each customer by its file name, which the
manifest keeps unique, so either layout works.
"""

from __future__ import annotations

import argparse
import tempfile
from typing import Any

from fleetcast.model.manifest import MANIFEST_NAME, ManifestError
from fleetcast.models_prefix import S3Prefix, write_sagemaker_manifest
from fleetcast.paths import FULLY_REPLICATED, SHARDED_BY_S3_KEY
from launch.common import (
    JOB_PATHS,
    MANIFEST_FILE,
    Aws,
    JobSpec,
    LaunchError,
    Layout,
    add_job_arguments,
    aws_from_args,
    has_manifest,
    job_from_args,
    note,
    processing_flow,
    processing_input,
    processing_job_request,
    processing_output,
    start_job,
    validate_request,
    wait_if_asked,
)

MODELS_PATH = JOB_PATHS.forecast_models_dir.as_posix()
REGRESSORS_PATH = JOB_PATHS.forecast_regressors_dir.as_posix()
FORECASTS_PATH = JOB_PATHS.forecast_output_dir.as_posix()
REPORTS_PATH = JOB_PATHS.forecast_reports_dir.as_posix()
FORECASTS_AREA, REPORTS_AREA, INPUTS_AREA = "forecasts", "forecast-reports", "forecast-inputs"
INPUT_MANIFEST_NAME = "models.manifest"
REGRESSORS_URI_ENDINGS = (".csv", ".csv.gz", "/")


def forecast_arguments(period: int, regressors_uri: str | None = None) -> list[str]:
    arguments = ["--models", MODELS_PATH, "--period", str(period), "--out", FORECASTS_PATH]
    arguments += ["--reports", REPORTS_PATH]
    if regressors_uri:  # a file arrives inside the input's folder under its own name; a prefix is the folder
        name = "" if regressors_uri.endswith("/") else regressors_uri.rsplit("/", 1)[-1]
        arguments += ["--regressors", f"{REGRESSORS_PATH}/{name}".rstrip("/")]
    return arguments


def forecast_outputs(forecasts_uri: Any, reports_uri: Any) -> list[dict[str, Any]]:
    """The job's two outputs; a URI may be a pipeline expression (`{"Std:Join": ...}`) as well as a string."""
    return [
        processing_output("forecasts", forecasts_uri, FORECASTS_PATH),
        processing_output("reports", reports_uri, REPORTS_PATH),
    ]


def input_manifest_uri(layout: Layout, job_name: str) -> str:
    return layout.uri(INPUTS_AREA, f"{job_name}/{INPUT_MANIFEST_NAME}")


def write_input_manifest(aws: Aws, layout: Layout, job_name: str) -> str | None:
    """Write forecast-inputs/<job>/models.manifest, the archives the fleet manifest names; its URI, or None
    when there is no fleet manifest (older layouts: the caller reads the whole prefix instead)."""
    uri = input_manifest_uri(layout, job_name)
    if not has_manifest(aws, layout):
        found = aws.send(
            "s3", "ListObjectsV2", {"Bucket": layout.bucket, "Prefix": layout.key("models"), "MaxKeys": 1}
        )
        if not found.get("KeyCount", 0):  # the job would fail at its start, downloading nothing
            raise LaunchError(f"{layout.models} holds no models: train first (`launch train --wait`)")
        note(f"no fleet manifest in {layout.models}: every instance receives the whole prefix")
        return None
    if aws.dry_run:
        note(f"would write {uri}: the archive of every customer the fleet manifest names")
        return uri
    key = layout.key(INPUTS_AREA, f"{job_name}/{INPUT_MANIFEST_NAME}")
    listing = aws.send("s3", "ListObjectsV2", {"Bucket": layout.bucket, "Prefix": key, "MaxKeys": 1})
    if any(item["Key"] == key for item in listing.get("Contents", [])):
        raise LaunchError(
            f"{uri} exists: job name {job_name!r} was used before (by a job, or by a launch that stopped "
            "before its job started); choose another --job-name"
        )
    store = S3Prefix(layout.bucket, layout.key("models"), aws.client("s3"))
    with tempfile.TemporaryFile() as body:  # streamed through a file: a million rows are ~30 MB
        try:
            listed = write_sagemaker_manifest(store, body)
        except ManifestError as exc:
            raise LaunchError(f"cannot read the fleet manifest: {exc}") from None
        if not listed:
            raise LaunchError(f"the fleet manifest {layout.models}{MANIFEST_NAME} lists no customer")
        body.seek(0)
        put = {"Bucket": layout.bucket, "Key": key, "Body": body, "IfNoneMatch": "*"}  # never over an input
        aws.send("s3", "PutObject", put)
    note(f"wrote {uri}: {listed} archives, dealt out to the instances by SageMaker ({SHARDED_BY_S3_KEY})")
    return uri


def forecast_request(
    job: JobSpec,
    *,
    period: int,
    models_uri: str | None = None,
    input_manifest: Any = None,
    regressors_uri: str | None = None,
) -> dict[str, Any]:
    """The CreateProcessingJob request: over `input_manifest` (a SageMaker manifest of the archives to
    forecast, sharded) when given, else over the `models_uri` prefix (default models/), replicated; with
    `regressors_uri` (a CSV for every customer, or a prefix of `<customer>.csv`), replicated beside it."""
    if period < 1:
        raise LaunchError(f"--period must be at least 1, got {period}")
    if regressors_uri is not None and not regressors_uri.startswith("s3://"):
        raise LaunchError(f"--regressors-uri must be an s3:// URI, got {regressors_uri!r}")
    if regressors_uri is not None and not regressors_uri.endswith(REGRESSORS_URI_ENDINGS):
        # Which path the job is told depends on it: a file's own name, or the folder a prefix fills.
        raise LaunchError(
            "--regressors-uri must name a .csv or .csv.gz file, or a prefix of <customer>.csv files ending "
            f"in /, got {regressors_uri!r}"
        )
    layout: Layout = job.layout
    if input_manifest is not None:
        models = processing_input("models", input_manifest, MODELS_PATH, SHARDED_BY_S3_KEY, MANIFEST_FILE)
    else:  # every instance needs the fleet manifest and the versions it names; the job splits the customers
        models = processing_input("models", models_uri or layout.models, MODELS_PATH, FULLY_REPLICATED)
    inputs = [models]
    if regressors_uri:
        inputs.append(processing_input("regressors", regressors_uri, REGRESSORS_PATH, FULLY_REPLICATED))
    return processing_job_request(
        job,
        command="forecast",
        arguments=forecast_arguments(period, regressors_uri),
        inputs=inputs,
        outputs=forecast_outputs(
            layout.uri(FORECASTS_AREA, f"{job.name}/"), layout.uri(REPORTS_AREA, f"{job.name}/")
        ),
    )


def start_forecast(aws: Aws, request: dict[str, Any]) -> str:
    count = request["ProcessingResources"]["ClusterConfig"]["InstanceCount"]
    summary = f"{processing_flow(request)} ({count} instances)"
    return start_job(aws, "forecast", "CreateProcessingJob", request, summary)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("forecast", help="Processing job: forecast every customer in models/ into forecasts/")
    p.add_argument("--period", type=int, default=7, help="steps to forecast per customer")
    p.add_argument(
        "--models-uri",
        default=None,
        help="S3 prefix of the archives, every instance receiving all of it (default: the archives the "
        "fleet manifest in <prefix>/models/ names, dealt out to the instances)",
    )
    p.add_argument(
        "--regressors-uri",
        default=None,
        help="future values for models trained with regressors: an s3:// .csv or .csv.gz file of "
        "timestamp,<regressor>,... for every customer, or an s3:// prefix (ending in /) of "
        "<customer>.csv files",
    )
    add_job_arguments(p, kind="forecast", instance_count=1, max_runtime_seconds=3600)

    def run(args: argparse.Namespace) -> int:
        aws = aws_from_args(args)
        job = job_from_args(args, "forecast")
        regressors = args.regressors_uri
        # Refuse bad values (ours, and the service model's) before the manifest file takes the job's name.
        validate_request(
            "sagemaker",
            "CreateProcessingJob",
            forecast_request(job, period=args.period, regressors_uri=regressors),
        )
        listed = None if args.models_uri else write_input_manifest(aws, job.layout, job.name)
        request = forecast_request(
            job,
            period=args.period,
            models_uri=args.models_uri,
            input_manifest=listed,
            regressors_uri=regressors,
        )
        return wait_if_asked(aws, args, "forecast", start_forecast(aws, request))

    p.set_defaults(run=run)
