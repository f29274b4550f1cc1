"""`process`: a Processing job that runs the image's split step, raw/ -> customers/ (one object each)."""

from __future__ import annotations

import argparse

from launch.common import Aws, Layout, add_common_arguments, aws_from_args, base_name, layout_from_args, note
from launch.common import unique_name as make_name

INPUT_PATH = "/opt/ml/processing/input"
OUTPUT_PATH = "/opt/ml/processing/output"


def processing_request(
    *,
    job_name: str,
    image: str,
    role: str,
    layout: Layout,
    instance_type: str,
    instance_count: int,
    volume_gb: int,
    max_runtime_seconds: int,
    shard_input: bool,
    buckets: int,
) -> dict:
    arguments = ["--input", INPUT_PATH, "--out", OUTPUT_PATH]
    if buckets:
        arguments += ["--buckets", str(buckets)]
    return {
        "ProcessingJobName": job_name,
        "RoleArn": role,
        "AppSpecification": {
            "ImageUri": image,
            "ContainerEntrypoint": ["fleetcast", "split"],
            "ContainerArguments": arguments,
        },
        "ProcessingInputs": [
            {
                "InputName": "raw",
                "S3Input": {
                    "S3Uri": layout.raw,
                    "LocalPath": INPUT_PATH,
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    # Each instance splitting every raw file would write the same customers twice;
                    # sharding is only right when every customer lives in exactly one raw file.
                    "S3DataDistributionType": "ShardedByS3Key" if shard_input else "FullyReplicated",
                },
            }
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "customers",
                    "S3Output": {
                        "S3Uri": layout.customers,
                        "LocalPath": OUTPUT_PATH,
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": instance_count,
                "InstanceType": instance_type,
                "VolumeSizeInGB": volume_gb,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_seconds},
    }


def start_processing(aws: Aws, request: dict) -> str:
    aws.send("sagemaker", "CreateProcessingJob", request)
    name = request["ProcessingJobName"]
    if not aws.dry_run:
        note(
            f"started processing job {name}: {request['ProcessingInputs'][0]['S3Input']['S3Uri']} -> "
            f"{request['ProcessingOutputConfig']['Outputs'][0]['S3Output']['S3Uri']}"
        )
    return name


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("process", help="Processing job: split raw/ into customers/ (one object per customer)")
    p.add_argument("--job-name", default=None, help="default: fleetcast-<prefix>-split-<timestamp>")
    p.add_argument("--instance-type", default="ml.m5.xlarge")
    p.add_argument("--instance-count", type=int, default=1)
    p.add_argument("--volume-size-gb", type=int, default=30)
    p.add_argument("--max-runtime-seconds", type=int, default=3600)
    p.add_argument(
        "--shard-input",
        action="store_true",
        help="ShardedByS3Key over raw/ (only when each customer is in exactly one raw file)",
    )
    p.add_argument("--buckets", type=int, default=0, help="write N part files of whole customers instead")
    p.add_argument("--wait", action="store_true", help="wait for the job and exit non-zero if it fails")
    add_common_arguments(p, needs=("image", "role", "bucket", "prefix"))

    def run(args: argparse.Namespace) -> int:
        aws, layout = aws_from_args(args), layout_from_args(args)
        request = processing_request(
            job_name=args.job_name or make_name(base_name(layout.prefix) + "-split"),
            image=args.image,
            role=args.role,
            layout=layout,
            instance_type=args.instance_type,
            instance_count=args.instance_count,
            volume_gb=args.volume_size_gb,
            max_runtime_seconds=args.max_runtime_seconds,
            shard_input=args.shard_input,
            buckets=args.buckets,
        )
        name = start_processing(aws, request)
        if args.wait and not aws.dry_run:
            from launch.status import KINDS, wait_for

            return wait_for(aws.client("sagemaker"), KINDS["processing"], name)
        return 0

    p.set_defaults(run=run)
