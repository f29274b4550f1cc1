"""`invoke`: ask the multi-model endpoint for one customer's forecast and print it as a table.

A multi-model endpoint loads `<customer>.tar.gz` on its first request; a cold load that outlasts the
invocation answers ModelNotReadyException while loading continues, so that error is retried with
exponential backoff. Works against AWS, or any endpoint speaking the InvokeEndpoint protocol
(--endpoint-url, e.g. the local endpoint front).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from launch.common import LaunchError, add_common_arguments, aws_from_args, call, endpoint_from_args, note


class InvokeError(LaunchError):
    """The endpoint answered with an error for this customer."""


def target_model(customer: str) -> str:
    return f"{customer}.tar.gz"


def invoke_request(
    endpoint: str, customer: str, period: int, freq: str | None = None, intervals: bool | None = None
) -> dict[str, Any]:
    payload: dict[str, Any] = {"period": period}
    if freq is not None:
        payload["freq"] = freq
    if intervals is not None:
        payload["intervals"] = intervals
    return {
        "EndpointName": endpoint,
        "TargetModel": target_model(customer),
        "ContentType": "application/json",
        "Accept": "application/json",
        "Body": json.dumps(payload).encode(),
    }


def _error_detail(exc: Any) -> str:
    """The container's own message when there is one (ModelError carries it in OriginalMessage)."""
    error = exc.response.get("Error", {})
    original = exc.response.get("OriginalMessage")
    if original:
        try:
            body = json.loads(original)
            return f"{body.get('error', 'error')}: {body.get('message', original)}"
        except ValueError:
            return original
    return f"{error.get('Code', 'error')}: {error.get('Message', str(exc))}"


def invoke_forecast(
    runtime: Any,
    endpoint: str,
    customer: str,
    period: int,
    *,
    freq: str | None = None,
    intervals: bool | None = None,
    max_attempts: int = 6,
    first_delay: float = 1.0,
    max_delay: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Send one InvokeEndpoint with `runtime` (a boto3 sagemaker-runtime client); return the JSON answer.

    Retries ModelNotReadyException up to `max_attempts` times, doubling the delay each time.
    """
    request = invoke_request(endpoint, customer, period, freq, intervals)
    delay = first_delay
    for attempt in range(1, max_attempts + 1):
        try:
            response = call(runtime, "sagemaker-runtime", "InvokeEndpoint", request)
            break
        except runtime.exceptions.ModelNotReadyException as exc:
            if attempt == max_attempts:
                detail = _error_detail(exc)
                raise InvokeError(
                    f"{target_model(customer)} still not loaded after {max_attempts} attempts: {detail}"
                ) from exc
            model = target_model(customer)
            note(f"{model} is loading (attempt {attempt}/{max_attempts}); retrying in {delay:g}s")
            sleep(delay)
            delay = min(delay * 2, max_delay)
        except (runtime.exceptions.ModelError, runtime.exceptions.ValidationError) as exc:
            raise InvokeError(f"customer {customer}: {_error_detail(exc)}") from exc
    body = response["Body"].read()
    try:
        return json.loads(body)
    except ValueError as exc:
        raise InvokeError(f"customer {customer}: the endpoint answered non-JSON: {body[:200]!r}") from exc


def forecast_table(answer: dict[str, Any]) -> str:
    """A fixed-width table of the forecast rows (interval columns only when the model produced them)."""
    rows = answer.get("forecast") or []
    columns = ["yhat", "yhat_lower", "yhat_upper"]
    columns = [c for c in columns if rows and all(c in row for row in rows)]
    header = f"{'ds':<20}" + "".join(f"{c:>14}" for c in columns)
    lines = [f"customer {answer.get('customer', '?')}: {len(rows)} step(s)", header, "-" * len(header)]
    for row in rows:
        values = "".join(f"{row[c]:>14.3f}" if row[c] is not None else f"{'-':>14}" for c in columns)
        lines.append(f"{row.get('ds', '')!s:<20}{values}")
    return "\n".join(lines)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("invoke", help="forecast for customers from the multi-model endpoint")
    p.add_argument("--endpoint-name", default=None, help="default: fleetcast-<prefix>")
    p.add_argument("--customer", action="append", required=True, help="customer id (repeatable)")
    p.add_argument("--period", type=int, default=7, help="steps to forecast")
    p.add_argument("--freq", default=None, help="pandas frequency (default: the model's own)")
    p.add_argument(
        "--intervals",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="include yhat_lower/yhat_upper (default: the server's choice)",
    )
    p.add_argument("--json", action="store_true", help="print the raw JSON answers instead of tables")
    p.add_argument("--max-attempts", type=int, default=6, help="tries while the model is loading")
    add_common_arguments(p)

    def run(args: argparse.Namespace) -> int:
        aws = aws_from_args(args)
        endpoint = endpoint_from_args(args)
        if aws.dry_run:
            for customer in args.customer:
                aws.send(
                    "sagemaker-runtime",
                    "InvokeEndpoint",
                    invoke_request(endpoint, customer, args.period, args.freq, args.intervals),
                )
            return 0
        runtime = aws.client("sagemaker-runtime")
        failures = 0
        for customer in args.customer:
            try:
                answer = invoke_forecast(
                    runtime,
                    endpoint,
                    customer,
                    args.period,
                    freq=args.freq,
                    intervals=args.intervals,
                    max_attempts=args.max_attempts,
                )
            except InvokeError as exc:  # one bad customer never stops the others
                failures += 1
                print(f"error: {exc}", file=sys.stderr)
                continue
            print(json.dumps(answer) if args.json else forecast_table(answer) + "\n")
        return 1 if failures else 0

    p.set_defaults(run=run)
