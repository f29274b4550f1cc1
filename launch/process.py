"""`process`: a Processing job that runs the image's split step, raw/ -> customers/ (one object each).

Two outputs: customers/ is the training channel and holds customer data only; the split's summary and
renamed-ids list go to reports/split/. With several instances every instance uploads to the same
prefixes, so split names what each instance writes apart (fleetcast.data.split.cluster).
"""

from __future__ import annotations

import argparse

from launch.common import (
    JOB_PATHS,
    Aws,
    JobSpec,
    add_job_arguments,
    aws_from_args,
    job_from_args,
    start_job,
    wait_if_asked,
)

INPUT_PATH = JOB_PATHS.processing_input_dir.as_posix()
OUTPUT_PATH = JOB_PATHS.processing_output_dir.as_posix()
REPORTS_PATH = JOB_PATHS.processing_reports_dir.as_posix()


def processing_request(job: JobSpec, *, shard_input: bool, buckets: int) -> dict:
    arguments = ["--input", INPUT_PATH, "--out", OUTPUT_PATH, "--reports", REPORTS_PATH]
    if buckets:
        arguments += ["--buckets", str(buckets)]
    return {
        "ProcessingJobName": job.name,
        "RoleArn": job.role,
        "AppSpecification": {
            "ImageUri": job.image,
            "ContainerEntrypoint": ["fleetcast", "split"],
            "ContainerArguments": arguments,
        },
        "ProcessingInputs": [
            {
                "InputName": "raw",
                "S3Input": {
                    "S3Uri": job.layout.raw,
                    "LocalPath": INPUT_PATH,
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    # Replicated: every instance reads every raw file and splits the customers it owns.
                    # Sharded: each splits its own raw files, right only when every customer lives in
                    # exactly one raw file.
                    "S3DataDistributionType": "ShardedByS3Key" if shard_input else "FullyReplicated",
                },
            }
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "customers",
                    "S3Output": {
                        "S3Uri": job.layout.customers,
                        "LocalPath": OUTPUT_PATH,
                        "S3UploadMode": "EndOfJob",
                    },
                },
                {
                    "OutputName": "reports",
                    "S3Output": {
                        "S3Uri": job.layout.split_reports,
                        "LocalPath": REPORTS_PATH,
                        "S3UploadMode": "EndOfJob",
                    },
                },
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": job.instance_count,
                "InstanceType": job.instance_type,
                "VolumeSizeInGB": job.volume_gb,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": job.max_runtime_seconds},
    }


def start_processing(aws: Aws, request: dict) -> str:
    source = request["ProcessingInputs"][0]["S3Input"]["S3Uri"]
    target = request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    return start_job(aws, "processing", "CreateProcessingJob", request, f"{source} -> {target}")


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
