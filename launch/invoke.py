"""`invoke`: forecasts for customers from the multi-model endpoint, printed as tables.

A thin CLI over `fleetcast.client` (the same client `fleetcast invoke` runs): its retry policy for a model
still loading (ModelNotReadyException) or throttled calls, its TargetModel naming, its table, and its
intervals default (the model's own). Works against AWS, or any endpoint speaking the InvokeEndpoint
protocol (--endpoint-url, e.g. the local endpoint front).
"""

from __future__ import annotations

import argparse

from fleetcast.client import RetryPolicy, invoke_main, invoke_request
from launch.common import add_common_arguments, aws_from_args, endpoint_from_args, validate_request


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("invoke", help="forecast for customers from the multi-model endpoint")
    p.add_argument("--endpoint-name", default=None, help="default: fleetcast-<prefix>")
    p.add_argument("--customer", action="append", required=True, help="customer id (repeatable)")
    p.add_argument("--period", type=int, default=7, help="steps to forecast (default: %(default)s)")
    p.add_argument("--freq", default=None, help="pandas frequency (default: the model's own)")
    p.add_argument(
        "--intervals",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ask for yhat_lower/yhat_upper, or not (default: the model's own choice)",
    )
    p.add_argument("--json", action="store_true", help="print each raw JSON answer instead of a table")
    p.add_argument(
        "--max-attempts",
        type=int,
        default=RetryPolicy.max_attempts,
        help="calls per customer while it loads or is throttled (default: %(default)s)",
    )
    add_common_arguments(p)

    def run(args: argparse.Namespace) -> int:
        aws = aws_from_args(args)
        endpoint = endpoint_from_args(args)
        requests = [
            invoke_request(endpoint, customer, args.period, freq=args.freq, intervals=args.intervals)
            for customer in args.customer
        ]
        for request in requests:  # a malformed name is refused before anything is sent
            validate_request("sagemaker-runtime", "InvokeEndpoint", request)
        if aws.dry_run:
            for request in requests:
                aws.send("sagemaker-runtime", "InvokeEndpoint", request)
            return 0
        return invoke_main(
            customers=args.customer,
            endpoint_name=endpoint,
            period=args.period,
            freq=args.freq,
            intervals=args.intervals,
            endpoint_url=args.endpoint_url,
            region=args.region,
            raw_json=args.json,
            max_attempts=args.max_attempts,
        )

    p.set_defaults(run=run)
