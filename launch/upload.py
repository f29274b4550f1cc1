"""`upload`: put raw CSVs (yours, or a generated synthetic one) under s3://bucket/prefix/raw/."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from launch.common import (
    Aws,
    LaunchError,
    Layout,
    add_common_arguments,
    aws_from_args,
    layout_from_args,
    note,
)

PUT_OBJECT_LIMIT = 5 * 1024**3  # S3's single-PUT limit


def create_bucket_request(bucket: str, region: str) -> dict:
    request: dict = {"Bucket": bucket}
    # us-east-1 is the one region that rejects an explicit LocationConstraint.
    if region != "us-east-1":
        request["CreateBucketConfiguration"] = {"LocationConstraint": region}
    return request


def upload_files(aws: Aws, layout: Layout, files: list[Path], create_bucket: bool = False) -> list[str]:
    """Upload each CSV to raw/<file name>; returns the S3 URIs written."""
    for path in files:
        if not path.is_file():
            raise LaunchError(f"--file {path}: no such file")
        if path.stat().st_size > PUT_OBJECT_LIMIT:
            raise LaunchError(f"{path} is over 5 GiB: split it into several CSVs (any customer order works)")
    names = [path.name for path in files]
    if len(set(names)) != len(names):
        raise LaunchError("two --file arguments share a file name; they would overwrite each other in raw/")
    if create_bucket:
        aws.send("s3", "CreateBucket", create_bucket_request(layout.bucket, aws.region))
    written = []
    for path in files:
        with path.open("rb") as body:
            request = {
                "Bucket": layout.bucket,
                "Key": layout.key("raw", path.name),
                "Body": body,
                "ContentType": "text/csv",
            }
            aws.send("s3", "PutObject", request)
        uri = layout.uri("raw", path.name)
        written.append(uri)
        if not aws.dry_run:
            note(f"uploaded {path} ({path.stat().st_size:,} bytes) to {uri}")
    return written


def generate_csv_file(folder: Path, customers: int, seed: int, rows: int, freq: str) -> Path:
    try:
        from fleetcast.data.generate import generate_csv
    except ImportError as exc:  # launch runs without the image's package installed
        raise LaunchError("--generate needs the fleetcast package (pip install -e . from the repo)") from exc
    out = folder / f"synthetic-{customers}-customers-seed{seed}.csv"
    generate_csv(
        out=out,
        customers=customers,
        seed=seed,
        start="2022-01-01",
        end="2023-01-01",
        rows_per_customer=rows,
        freq=freq,
    )
    return out


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upload", help="put raw CSVs under s3://BUCKET/PREFIX/raw/")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", nargs="+", type=Path, help="CSV files (customer_id,timestamp,consumption)")
    source.add_argument("--generate", type=int, metavar="N", help="generate a synthetic CSV of N customers")
    p.add_argument("--seed", type=int, default=42, help="with --generate")
    p.add_argument("--rows-per-customer", type=int, default=365, help="with --generate")
    p.add_argument("--freq", default="D", help="with --generate: D or a sub-daily alias like h")
    p.add_argument("--create-bucket", action="store_true", help="create the bucket first")
    add_common_arguments(p, needs=("bucket", "prefix"))

    def run(args: argparse.Namespace) -> int:
        aws, layout = aws_from_args(args), layout_from_args(args)
        if args.file:
            upload_files(aws, layout, args.file, args.create_bucket)
            return 0
        with tempfile.TemporaryDirectory(prefix="fleetcast-upload-") as folder:
            path = generate_csv_file(
                Path(folder), args.generate, args.seed, args.rows_per_customer, args.freq
            )
            upload_files(aws, layout, [path], args.create_bucket)
        return 0

    p.set_defaults(run=run)
