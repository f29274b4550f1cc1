"""`process`: a Processing job that runs the image's split step, raw/ -> customers/ (one object each).

Two outputs: customers/ is the training channel and holds customer data only; the split's summary and
renamed-ids list go to reports/split/. With several instances every instance uploads to the same
prefixes, so split names what each instance writes apart (fleetcast.data.split.cluster).
"""

from __future__ import annotations

import argparse
from typing import Any

from fleetcast.paths import FULLY_REPLICATED, SHARDED_BY_S3_KEY
from launch.common import (
    JOB_PATHS,
    Aws,
    JobSpec,
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

INPUT_PATH = JOB_PATHS.processing_input_dir.as_posix()
OUTPUT_PATH = JOB_PATHS.processing_output_dir.as_posix()
REPORTS_PATH = JOB_PATHS.processing_reports_dir.as_posix()


def processing_request(job: JobSpec, *, shard_input: bool, buckets: int) -> dict[str, Any]:
    arguments = ["--input", INPUT_PATH, "--out", OUTPUT_PATH, "--reports", REPORTS_PATH]
    if buckets:
        arguments += ["--buckets", str(buckets)]
    # Replicated: every instance reads every raw file and splits the customers it owns.
    # Sharded: each splits its own raw files, right only when every customer lives in exactly one raw file.
    distribution = SHARDED_BY_S3_KEY if shard_input else FULLY_REPLICATED
    return processing_job_request(
        job,
        command="split",
        arguments=arguments,
        inputs=[processing_input("raw", job.layout.raw, INPUT_PATH, distribution)],
        outputs=[
            processing_output("customers", job.layout.customers, OUTPUT_PATH),
            processing_output("reports", job.layout.split_reports, REPORTS_PATH),
        ],
    )


def start_processing(aws: Aws, request: dict) -> str:
    return start_job(aws, "processing", "CreateProcessingJob", request, processing_flow(request))


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "process", help="Processing job: split raw/ into customers/ (one object per customer), reports/split/"
    )
    p.add_argument(
        "--shard-input",
        action="store_true",
        help="ShardedByS3Key over raw/ (only when each customer is in exactly one raw file)",
    )
    p.add_argument("--buckets", type=int, default=0, help="write N part files of whole customers instead")
    add_job_arguments(p, kind="processing", instance_count=1, max_runtime_seconds=3600)

    def run(args: argparse.Namespace) -> int:
        aws = aws_from_args(args)
        job = job_from_args(args, "processing")
        request = processing_request(job, shard_input=args.shard_input, buckets=args.buckets)
        return wait_if_asked(aws, args, "processing", start_processing(aws, request))

    p.set_defaults(run=run)
