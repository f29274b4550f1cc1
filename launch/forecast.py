"""`forecast`: a Processing job that runs the image's batch forecast, models/ -> forecasts/<job>/.

Every instance receives the models prefix (FullyReplicated): the fleet manifest there names the version
that serves each customer, and each instance forecasts the customers whose id hashes to it (the job's
own rule, `fleetcast.forecast.sources`), writing `forecasts-<instance>.csv.gz`. Instances never write
the same key, and each run writes under its own job name, so last night's forecasts stay where they were.
"""

from __future__ import annotations

import argparse
from typing import Any

from launch.common import (
    JOB_PATHS,
    Aws,
    JobSpec,
    LaunchError,
    Layout,
    add_job_arguments,
    aws_from_args,
    job_from_args,
    processing_flow,
    processing_input,
    processing_job_request,
    processing_output,
    start_job,
    wait_if_asked,
)

MODELS_PATH = JOB_PATHS.forecast_models_dir.as_posix()
FORECASTS_PATH = JOB_PATHS.forecast_output_dir.as_posix()
REPORTS_PATH = JOB_PATHS.forecast_reports_dir.as_posix()
FORECASTS_AREA, REPORTS_AREA = "forecasts", "forecast-reports"


def forecast_arguments(period: int) -> list[str]:
    return [
        "--models",
        MODELS_PATH,
        "--period",
        str(period),
        "--out",
        FORECASTS_PATH,
        "--reports",
        REPORTS_PATH,
    ]


def forecast_outputs(forecasts_uri: Any, reports_uri: Any) -> list[dict[str, Any]]:
    """The job's two outputs; a URI may be a pipeline expression (`{"Std:Join": ...}`) as well as a string."""
    return [
        processing_output("forecasts", forecasts_uri, FORECASTS_PATH),
        processing_output("reports", reports_uri, REPORTS_PATH),
    ]


def forecast_request(job: JobSpec, *, period: int, models_uri: str | None = None) -> dict[str, Any]:
    if period < 1:
        raise LaunchError(f"--period must be at least 1, got {period}")
    layout: Layout = job.layout
    # Every instance needs the manifest and the versions it names; the job splits the customers.
    models = processing_input("models", models_uri or layout.models, MODELS_PATH, "FullyReplicated")
    return processing_job_request(
        job,
        command="forecast",
        arguments=forecast_arguments(period),
        inputs=[models],
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
    p.add_argument("--models-uri", default=None, help="S3 prefix of the archives (default: <prefix>/models/)")
    add_job_arguments(p, kind="forecast", instance_count=1, max_runtime_seconds=3600)

    def run(args: argparse.Namespace) -> int:
        aws = aws_from_args(args)
        job = job_from_args(args, "forecast")
        request = forecast_request(job, period=args.period, models_uri=args.models_uri)
        return wait_if_asked(aws, args, "forecast", start_forecast(aws, request))

    p.set_defaults(run=run)
