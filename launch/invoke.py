"""`invoke`: forecasts for customers from the multi-model endpoint, printed as tables.

A thin CLI over `fleetcast.client` (the same client `fleetcast invoke` runs): its retry policy for a model
still loading (ModelNotReadyException) or throttled calls, its TargetModel naming, its table, and its
intervals default (the model's own). Works against AWS, or any endpoint speaking the InvokeEndpoint
protocol (--endpoint-url, e.g. the local endpoint front).
"""

from __future__ import annotations

import argparse

from fleetcast.client import add_invoke_arguments, invoke_from_args, invoke_requests
from launch.common import (
    LaunchError,
    add_common_arguments,
    aws_from_args,
    endpoint_from_args,
    validate_request,
)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("invoke", help="forecast for customers from the multi-model endpoint")
    p.add_argument("--endpoint-name", default=None, help="default: fleetcast-<prefix>")
    add_invoke_arguments(p)
    add_common_arguments(p)

    def run(args: argparse.Namespace) -> int:
        aws = aws_from_args(args)
        endpoint = endpoint_from_args(args)
        try:
            requests = invoke_requests(args, endpoint)
        except ValueError as exc:  # --regressor values that do not fit --period
            raise LaunchError(str(exc)) from None
        for request in requests:  # a malformed name is refused before anything is sent
            validate_request("sagemaker-runtime", "InvokeEndpoint", request)
        if aws.dry_run:
            for request in requests:
                aws.send("sagemaker-runtime", "InvokeEndpoint", request)
            return 0
        return invoke_from_args(
            args, endpoint_name=endpoint, endpoint_url=args.endpoint_url, region=args.region
        )

    p.set_defaults(run=run)
