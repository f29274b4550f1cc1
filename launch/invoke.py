"""`invoke`: forecasts for customers from the multi-model endpoint, printed as tables.

A thin CLI over `fleetcast.client` (the same client `fleetcast invoke` runs): its retry policy for a model
still loading (ModelNotReadyException) or throttled calls, its TargetModel resolution, its table, and its
intervals default (the model's own). Works against AWS, or any endpoint speaking the InvokeEndpoint
protocol (--endpoint-url, e.g. the local endpoint front).

TargetModel is each customer's current version in the fleet manifest, read from the prefix's models/
(`s3://B/P/models/manifest.csv.gz`, which `train --wait` publishes), or from --manifest.
"""

from __future__ import annotations

import argparse

from fleetcast.client import (
    InvokeError,
    TargetModels,
    add_invoke_arguments,
    invoke_from_args,
    invoke_requests,
)
from fleetcast.model.manifest import MANIFEST_NAME
from launch.common import (
    LaunchError,
    add_common_arguments,
    aws_from_args,
    endpoint_from_args,
    layout_from_args,
    note,
    validate_request,
)

# What a dry run shows as a TargetModel it would have read from the manifest in S3.
UNRESOLVED_RUN = "RUN"


class Unresolved(TargetModels):
    """A dry run's stand-in for the manifest in S3: `RUN/<customer>.tar.gz`."""

    def __call__(self, customer: str) -> str:
        return f"{UNRESOLVED_RUN}/{super().__call__(customer)}"


def manifest_from_args(args: argparse.Namespace) -> str:
    """--manifest, else the fleet manifest under the prefix's models/ (needs --bucket)."""
    if args.manifest:
        return args.manifest
    if not args.bucket:
        raise LaunchError(
            f"pass --bucket (the fleet manifest is read from s3://BUCKET/PREFIX/models/{MANIFEST_NAME}) "
            "or --manifest"
        )
    return layout_from_args(args).models + MANIFEST_NAME


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("invoke", help="forecast for customers from the multi-model endpoint")
    p.add_argument("--endpoint-name", default=None, help="default: fleetcast-<prefix>")
    add_invoke_arguments(p, manifest_default=f"s3://BUCKET/PREFIX/models/{MANIFEST_NAME}")
    add_common_arguments(p)

    def run(args: argparse.Namespace) -> int:
        aws = aws_from_args(args)
        endpoint = endpoint_from_args(args)
        args.manifest = manifest_from_args(args)
        # A malformed request is refused before anything is read or sent (the names are checked later).
        try:
            unresolved = invoke_requests(args, endpoint, TargetModels())
        except ValueError as exc:  # --regressor values that do not fit --period
            raise LaunchError(str(exc)) from None
        for request in unresolved:
            validate_request("sagemaker-runtime", "InvokeEndpoint", request)
        if not aws.dry_run:
            return invoke_from_args(
                args, endpoint_name=endpoint, endpoint_url=args.endpoint_url, region=args.region
            )
        if args.manifest.startswith("s3://"):
            # Reading it would need credentials and the network, which a dry run never uses.
            note(
                f"would read {args.manifest} for each customer's TargetModel (shown as {UNRESOLVED_RUN}/...)"
            )
            targets: TargetModels = Unresolved()
        else:
            targets = TargetModels(args.manifest)
        try:
            requests = invoke_requests(args, endpoint, targets)
        except InvokeError as exc:
            raise LaunchError(str(exc)) from None
        for request in requests:
            aws.send("sagemaker-runtime", "InvokeEndpoint", request)
        return 0

    p.set_defaults(run=run)
