"""The one InvokeEndpoint client: a customer's forecast from a multi-model endpoint, through boto3.

Used by `fleetcast invoke`, `python -m launch invoke`, `fleetcast plot` and `local_test/`. The same code
calls a real SageMaker endpoint (no endpoint URL) or `fleetcast local-endpoint` (`endpoint_url`).

- TargetModel is the customer's current model version, as the fleet manifest names it (`--manifest`: the
  manifest, or the models prefix holding it, a folder or S3; `TargetModels`). Without a manifest it is the
  unversioned `<customer>.tar.gz` (`target_model`), what a model.tar.gz extracted flat holds.
- Intervals are asked for only when the caller says so; otherwise the model's own choice holds, so a
  model trained with `uncertainty_samples=0` answers point forecasts instead of a 400.
- One retry policy (`RetryPolicy`): the errors an endpoint means as "try again" (a model still loading,
  throttling, a brief outage) are retried with bounded exponential backoff; botocore's own retries are
  switched off, so nothing else retries behind it.
- Loopback endpoints get a default region and, only when no credentials are configured, placeholder
  ones (the local endpoint does not check signatures, but botocore needs something to sign with).

`python -m fleetcast.client table [FILE]` prints the table of an answer already received (FILE or stdin),
for scripts that call a container directly (local_test/predict.sh).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TextIO
from urllib.parse import urlparse

from fleetcast.data.customer_ids import safe_customer_id
from fleetcast.model.archive import archive_name
from fleetcast.model.manifest import ManifestError

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
LOOPBACK_REGION = "us-east-1"
LOOPBACK_CREDENTIALS = {"aws_access_key_id": "loopback", "aws_secret_access_key": "loopback"}
READ_TIMEOUT_S = 70  # SageMaker gives an invocation 60 s; a little more, so its own error arrives

MODEL_NOT_READY = "ModelNotReadyException"
THROTTLING_ERRORS = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)
# What SageMaker and the local endpoint answer when the same request may succeed a moment later.
RETRYABLE_ERRORS = frozenset({MODEL_NOT_READY, "ServiceUnavailable", *THROTTLING_ERRORS})


class InvokeError(Exception):
    """No forecast: the endpoint refused or failed the request, or could not be reached."""


@dataclass(frozen=True)
class RetryPolicy:
    """Retry RETRYABLE_ERRORS up to `max_attempts` calls, waiting first_delay_s, then twice that, ...

    The waits are capped at max_delay_s; the defaults wait at most 1+2+4+8+16 = 31 s in all, about half
    of what one call may take.
    """

    max_attempts: int = 6
    first_delay_s: float = 1.0
    max_delay_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"--max-attempts must be at least 1, got {self.max_attempts}")

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed call number `attempt` (1-based)."""
        return min(self.max_delay_s, self.first_delay_s * 2 ** (attempt - 1))

    @staticmethod
    def retries(error_code: str | None) -> bool:
        return error_code in RETRYABLE_ERRORS


@dataclass
class Forecast:
    """One customer's answer, and how it was obtained."""

    answer: dict[str, Any]  # the endpoint's JSON, as sent
    latency_ms: float | None = None  # of the call that answered
    attempts: int = 1
    variant: str | None = None
    cache: str | None = None  # only the local endpoint reports it (X-Fleetcast-Cache)

    @property
    def customer(self) -> str:
        return str(self.answer.get("customer", "?"))

    @property
    def rows(self) -> list[dict[str, Any]]:
        return list(self.answer.get("forecast") or [])


def target_model(customer: str) -> str:
    """The unversioned TargetModel of a customer: its archive's name, `<customer>.tar.gz`.

    Ids with characters beyond `A-Za-z0-9._-` were stored under their safe id (a cleaned name plus a
    hash); a safe id maps to itself, so both spellings of a customer reach the same model.
    """
    return archive_name(safe_customer_id(customer))


class TargetModels:
    """Customer ids to TargetModels: each one's current version in the fleet manifest at `manifest`
    (read once, for the customers asked), or without a manifest the unversioned name."""

    def __init__(self, manifest: str | None = None, s3_client: Any = None) -> None:
        self.manifest = manifest
        self._s3_client = s3_client
        self._found: dict[str, str] = {}

    def prefetch(self, customers: Sequence[str]) -> None:
        """Read the manifest once for all `customers` (InvokeError when it cannot be read)."""
        if self.manifest is None:
            return
        from botocore.exceptions import BotoCoreError, ClientError

        from fleetcast.models_prefix import manifest_at, resolve

        wanted = {safe_customer_id(c) for c in customers} - set(self._found)
        if not wanted:
            return
        try:
            store, name = manifest_at(self.manifest, self._s3_client)
            found = resolve(store, name, wanted)
        except (ManifestError, ValueError) as exc:
            raise InvokeError(f"cannot read the fleet manifest: {exc}") from exc
        except (BotoCoreError, ClientError) as exc:  # no credentials, no bucket, unreachable
            raise InvokeError(f"cannot read the fleet manifest {self.manifest}: {exc}") from exc
        self._found.update({customer: entry.target_model for customer, entry in found.items()})

    def __call__(self, customer: str) -> str:
        if self.manifest is None:
            return target_model(customer)
        self.prefetch([customer])
        safe = safe_customer_id(customer)
        if safe not in self._found:
            raise InvokeError(f"customer {customer} has no model in the fleet manifest {self.manifest}")
        return self._found[safe]


Regressors = dict[str, list[float]]


def forecast_payload(
    period: int,
    freq: str | None = None,
    intervals: bool | None = None,
    regressors: Regressors | None = None,
) -> dict[str, Any]:
    """The request body; `freq`, `intervals` and `regressors` only when given, so the model's own
    defaults apply and a model without regressors gets today's request."""
    payload: dict[str, Any] = {"period": period}
    if freq is not None:
        payload["freq"] = freq
    if intervals is not None:
        payload["intervals"] = intervals
    if regressors:
        payload["regressors"] = regressors
    return payload


def invoke_request(
    endpoint_name: str,
    customer: str,
    period: int,
    *,
    freq: str | None = None,
    intervals: bool | None = None,
    regressors: Regressors | None = None,
    targets: TargetModels | None = None,
) -> dict[str, Any]:
    """The InvokeEndpoint parameters, shaped as boto3 takes them (and as `launch --dry-run` prints them)."""
    return {
        "EndpointName": endpoint_name,
        "TargetModel": (targets or TargetModels())(customer),
        "ContentType": "application/json",
        "Accept": "application/json",
        "Body": json.dumps(forecast_payload(period, freq, intervals, regressors)).encode(),
    }


def regressor_option(text: str) -> tuple[str, list[float]]:
    """`--regressor temperature=4.1,3.8,5.0`: a regressor's values at the forecast dates, in order."""
    name, sep, values = text.partition("=")
    name = name.strip()
    try:
        if not sep or not name:
            raise ValueError
        numbers = [float(value) for value in values.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected NAME=V1,V2,... with one number per forecast step, e.g. temperature=4.1,3.8"
        ) from None
    return name, numbers


def regressor_values(options: Sequence[tuple[str, list[float]]] | None, period: int) -> Regressors | None:
    """The `--regressor` options as the request's `regressors`; ValueError for a repeat or a wrong count."""
    if not options:
        return None
    values: Regressors = {}
    for name, numbers in options:
        if name in values:
            raise ValueError(f"--regressor {name} is given twice")
        if len(numbers) != period:
            raise ValueError(
                f"--regressor {name} has {len(numbers)} values; --period {period} needs {period}"
            )
        values[name] = numbers
    return values


def is_loopback(url: str | None) -> bool:
    return url is not None and urlparse(url).hostname in LOOPBACK_HOSTS


def runtime_client(endpoint_url: str | None = None, region: str | None = None) -> Any:
    """A boto3 `sagemaker-runtime` client with retries left to RetryPolicy.

    `endpoint_url` None means AWS (or boto3's AWS_ENDPOINT_URL, when set). A loopback endpoint, however
    it was named, gets us-east-1 when no region is configured and placeholder credentials when none are.
    """
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    session = boto3.session.Session()
    config = Config(
        retries={"total_max_attempts": 1},
        read_timeout=READ_TIMEOUT_S,
        user_agent_extra="fleetcast-client",
    )
    region = region or session.region_name
    try:
        # The resolved URL also covers AWS_ENDPOINT_URL; its region does not matter for the check.
        probe = session.client(
            "sagemaker-runtime",
            region_name=region or LOOPBACK_REGION,
            endpoint_url=endpoint_url,
            config=config,
        )
    except BotoCoreError as exc:
        raise InvokeError(f"cannot set up a sagemaker-runtime client: {exc}") from exc
    if not is_loopback(probe.meta.endpoint_url):
        if region is None:
            raise InvokeError(
                "no AWS region: pass --region or set AWS_REGION (or a default in ~/.aws/config)"
            )
        return probe
    if session.get_credentials() is not None:
        return probe
    return session.client(
        "sagemaker-runtime",
        region_name=region or LOOPBACK_REGION,
        endpoint_url=probe.meta.endpoint_url,
        config=config,
        **LOOPBACK_CREDENTIALS,
    )


def error_detail(exc: Any) -> str:
    """What went wrong, in the container's own words when it gave any (ModelError's OriginalMessage)."""
    error = exc.response.get("Error", {})
    original = exc.response.get("OriginalMessage")
    if original:
        try:
            body = json.loads(original)
        except ValueError:
            return str(original)
        if isinstance(body, dict):
            return f"{body.get('error', 'error')}: {body.get('message', original)}"
        return str(original)
    return f"{error.get('Code', 'error')}: {error.get('Message', str(exc))}"


RetryNote = Callable[[str, str, int, float], None]  # (target model, error code, attempt, delay) -> None


def send(
    client: Any,
    request: dict[str, Any],
    *,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: RetryNote | None = None,
) -> Forecast:
    """Send one InvokeEndpoint (`request` as invoke_request builds it), retrying as `retry` says."""
    from botocore.exceptions import BotoCoreError, ClientError

    retry = retry or RetryPolicy()
    target = request.get("TargetModel", "?")
    for attempt in range(1, retry.max_attempts + 1):
        start = time.perf_counter()
        try:
            response = client.invoke_endpoint(**request)
            body = response["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if not retry.retries(code):
                raise InvokeError(f"{target}: {error_detail(exc)}") from exc
            if attempt == retry.max_attempts:
                raise InvokeError(
                    f"{target}: still {code} after {retry.max_attempts} attempts: {error_detail(exc)}"
                ) from exc
            delay = retry.delay_after(attempt)
            if on_retry is not None:
                on_retry(target, code, attempt, delay)
            sleep(delay)
            continue
        except BotoCoreError as exc:
            raise InvokeError(f"{target}: {exc}") from exc  # unreachable, no credentials, timed out
        latency_ms = (time.perf_counter() - start) * 1000.0
        try:
            answer = json.loads(body)
        except ValueError as exc:
            raise InvokeError(f"{target}: the endpoint answered non-JSON: {body[:200]!r}") from exc
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return Forecast(
            answer=answer,
            latency_ms=latency_ms,
            attempts=attempt,
            variant=response.get("InvokedProductionVariant"),
            cache=headers.get("x-fleetcast-cache"),
        )
    raise AssertionError("unreachable: the loop returns or raises")


def request_forecast(
    client: Any,
    endpoint_name: str,
    customer: str,
    period: int,
    *,
    freq: str | None = None,
    intervals: bool | None = None,
    regressors: Regressors | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: RetryNote | None = None,
    targets: TargetModels | None = None,
) -> Forecast:
    """The forecast of `customer` for `period` steps (intervals: the model's own choice unless given),
    with the regressors' values at those steps for a model trained with regressors."""
    request = invoke_request(
        endpoint_name,
        customer,
        period,
        freq=freq,
        intervals=intervals,
        regressors=regressors,
        targets=targets,
    )
    return send(client, request, retry=retry, sleep=sleep, on_retry=on_retry)


def _number(value: Any, width: int) -> str:
    return f"{value:>{width}.2f}" if isinstance(value, int | float) else f"{'-':>{width}}"


def format_table(forecast: Forecast, source: str | None = None) -> str:
    """A title line and a fixed-width table; interval columns only when the answer carries them."""
    rows = forecast.rows
    columns = ["yhat"] + [c for c in ("yhat_lower", "yhat_upper") if any(c in row for row in rows)]
    title = f"customer {forecast.customer}: {len(rows)} step{'s' if len(rows) != 1 else ''}"
    if source:
        title += f" from {source}"
    how = [f"variant {forecast.variant}"] if forecast.variant else []
    if forecast.latency_ms is not None:
        how.append(f"{forecast.latency_ms:.0f} ms")
    if forecast.cache:
        how.append(f"model cache {forecast.cache}")
    if forecast.attempts > 1:
        how.append(f"{forecast.attempts} attempts")
    if how:
        title += f" ({', '.join(how)})"
    header = f"{'ds':<20}" + "".join(f"{c:>12}" for c in columns)
    lines = [title, header, "-" * len(header)]
    lines += [
        f"{row.get('ds', '')!s:<20}" + "".join(_number(row.get(c), 12) for c in columns) for row in rows
    ]
    return "\n".join(lines)


def invoke_main(
    *,
    customers: Sequence[str],
    endpoint_name: str,
    period: int,
    freq: str | None = None,
    intervals: bool | None = None,
    regressors: Regressors | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    raw_json: bool = False,
    max_attempts: int | None = None,
    retry: RetryPolicy | None = None,
    manifest: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """What `fleetcast invoke` and `launch invoke` run: a table (or the JSON) per customer.

    `max_attempts` overrides `retry`'s (default RetryPolicy()). A customer that fails is reported on `err`
    and the others still run; exit 1 if any failed, 2 for a bad option.
    """
    out, err = out or sys.stdout, err or sys.stderr
    retry = retry or RetryPolicy()
    try:
        if max_attempts is not None:
            retry = replace(retry, max_attempts=max_attempts)
    except ValueError as exc:
        print(f"error: {exc}", file=err)
        return 2

    def note_retry(target: str, code: str, attempt: int, delay: float) -> None:
        tries = retry.max_attempts
        print(f"{target}: {code} (attempt {attempt}/{tries}); retrying in {delay:g} s", file=err, flush=True)

    if manifest is None:
        print("note: no --manifest, so TargetModel is the unversioned <customer>.tar.gz", file=err)
    try:
        client = runtime_client(endpoint_url, region)
        targets = TargetModels(manifest, s3_client(manifest, region))
        targets.prefetch(customers)
    except InvokeError as exc:
        print(f"error: {exc}", file=err)
        return 1
    failures = 0
    for index, customer in enumerate(customers):
        try:
            forecast = request_forecast(
                client,
                endpoint_name,
                customer,
                period,
                freq=freq,
                intervals=intervals,
                regressors=regressors,
                retry=retry,
                on_retry=note_retry,
                targets=targets,
            )
        except InvokeError as exc:
            failures += 1
            print(f"error: customer {customer}: {exc}", file=err, flush=True)
            continue
        if raw_json:
            print(json.dumps(forecast.answer), file=out, flush=True)
        else:
            print(("\n" if index else "") + format_table(forecast, endpoint_name), file=out, flush=True)
    return 1 if failures else 0


def s3_client(manifest: str | None, region: str | None) -> Any:
    """An S3 client when the manifest is in S3 (boto3's own endpoint rules, AWS_ENDPOINT_URL included)."""
    if manifest is None or not manifest.startswith("s3://"):
        return None
    import boto3

    return boto3.client("s3", region_name=region)


def add_invoke_arguments(parser: argparse.ArgumentParser, *, manifest_default: str = "none") -> None:
    """The flags `fleetcast invoke` and `launch invoke` share (each adds its own endpoint flags)."""
    parser.add_argument("--customer", action="append", required=True, help="customer id (repeatable)")
    parser.add_argument(
        "--manifest",
        default=None,
        help="the fleet manifest, or the models prefix holding manifest.csv.gz (a folder or "
        "s3://bucket/prefix): TargetModel is each customer's current version there "
        f"(default: {manifest_default})",
    )
    parser.add_argument("--period", type=int, default=7, help="steps to forecast (default: %(default)s)")
    parser.add_argument("--freq", default=None, help="pandas frequency (default: the model's own)")
    parser.add_argument(
        "--intervals",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ask for yhat_lower/yhat_upper, or not (default: the model's own choice)",
    )
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=RetryPolicy.max_attempts,
        help="calls per customer while its model loads or calls are throttled (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print each raw JSON answer instead of a table")
    add_regressor_argument(parser)


def add_regressor_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--regressor",
        action="append",
        type=regressor_option,
        default=None,
        metavar="NAME=V1,V2,...",
        help="a regressor's values at the forecast steps, one per --period step, for a model trained with "
        "it (repeatable), e.g. --regressor temperature=4.1,3.8,5.0",
    )


def invoke_requests(
    args: argparse.Namespace, endpoint_name: str, targets: TargetModels | None = None
) -> list[dict[str, Any]]:
    """The InvokeEndpoint parameters for each --customer (what `launch invoke --dry-run` prints)."""
    regressors = regressor_values(args.regressor, args.period)
    return [
        invoke_request(
            endpoint_name,
            customer,
            args.period,
            freq=args.freq,
            intervals=args.intervals,
            regressors=regressors,
            targets=targets,
        )
        for customer in args.customer
    ]


def invoke_from_args(
    args: argparse.Namespace, *, endpoint_name: str, endpoint_url: str | None, region: str | None
) -> int:
    """invoke_main with add_invoke_arguments' flags."""
    try:
        regressors = regressor_values(args.regressor, args.period)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return invoke_main(
        customers=args.customer,
        endpoint_name=endpoint_name,
        period=args.period,
        freq=args.freq,
        intervals=args.intervals,
        regressors=regressors,
        endpoint_url=endpoint_url,
        region=region,
        raw_json=args.json,
        max_attempts=args.max_attempts,
        manifest=args.manifest,
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "table" or len(argv) > 2:
        print("usage: python -m fleetcast.client table [ANSWER.json]  (default: stdin)", file=sys.stderr)
        return 2
    if len(argv) == 2:
        with open(argv[1]) as handle:
            answer = json.load(handle)
    else:
        answer = json.load(sys.stdin)
    print(format_table(Forecast(answer=answer)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
