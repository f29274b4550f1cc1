"""Client helpers: ask an endpoint (SageMaker or the local stand-in) for a customer's forecast via boto3.

Platform-agnostic: the same code calls a real multi-model endpoint (no `--endpoint-url`) or
`fleetcast local-endpoint`. TargetModel is `<customer>.tar.gz`, the training job's artifact name.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlparse

from fleetcast.model.archive import archive_name

log = logging.getLogger(__name__)

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
LOCAL_REGION = "us-east-1"


@dataclass
class Forecast:
    customer: str
    rows: list[dict[str, Any]]
    latency_ms: float
    variant: str | None
    cache: str | None  # only the local endpoint reports it (X-Fleetcast-Cache)


def runtime_client(endpoint_url: str | None = None, region: str | None = None) -> Any:
    """A `sagemaker-runtime` client; against a loopback URL, placeholder credentials when none are set."""
    import boto3
    from botocore.config import Config

    session = boto3.Session(region_name=region)
    kwargs: dict[str, Any] = {"config": Config(retries={"max_attempts": 2, "mode": "standard"})}
    is_local = endpoint_url is not None and urlparse(endpoint_url).hostname in LOCAL_HOSTS
    if is_local:
        kwargs["region_name"] = session.region_name or LOCAL_REGION
        if session.get_credentials() is None:
            # The local endpoint does not check signatures; botocore still needs something to sign with.
            kwargs.update(aws_access_key_id="local", aws_secret_access_key="local")
    return session.client("sagemaker-runtime", endpoint_url=endpoint_url, **kwargs)


def request_forecast(
    client: Any,
    endpoint_name: str,
    customer: str,
    period: int,
    *,
    freq: str | None = None,
    intervals: bool = True,
) -> Forecast:
    payload: dict[str, Any] = {"period": period, "intervals": intervals}
    if freq:
        payload["freq"] = freq
    start = time.perf_counter()
    response = client.invoke_endpoint(
        EndpointName=endpoint_name,
        TargetModel=archive_name(customer),
        ContentType="application/json",
        Accept="application/json",
        Body=json.dumps(payload).encode(),
    )
    body = json.loads(response["Body"].read())
    latency_ms = (time.perf_counter() - start) * 1000.0
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    return Forecast(
        customer=str(body.get("customer", customer)),
        rows=list(body.get("forecast", [])),
        latency_ms=latency_ms,
        variant=response.get("InvokedProductionVariant"),
        cache=headers.get("x-fleetcast-cache"),
    )


def format_table(forecast: Forecast) -> str:
    has_intervals = any("yhat_lower" in row for row in forecast.rows)
    header = f"{'ds':<20} {'yhat':>10}" + (f" {'yhat_lower':>11} {'yhat_upper':>11}" if has_intervals else "")
    lines = [header, "-" * len(header)]
    for row in forecast.rows:
        line = f"{str(row.get('ds', ''))[:19]:<20} {row.get('yhat', float('nan')):>10.2f}"
        if has_intervals:
            line += (
                f" {row.get('yhat_lower', float('nan')):>11.2f} {row.get('yhat_upper', float('nan')):>11.2f}"
            )
        lines.append(line)
    return "\n".join(lines)


def invoke_main(
    *,
    endpoint_url: str | None,
    endpoint_name: str,
    customer: str,
    period: int,
    freq: str | None,
    intervals: bool,
    region: str | None,
    raw_json: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    client = runtime_client(endpoint_url, region)
    try:
        forecast = request_forecast(client, endpoint_name, customer, period, freq=freq, intervals=intervals)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        detail = exc.response.get("OriginalMessage")
        log.error("%s: %s%s", error.get("Code"), error.get("Message"), f" ({detail})" if detail else "")
        return 1
    except BotoCoreError as exc:
        log.error("could not reach the endpoint: %s", exc)
        return 1
    if raw_json:
        print(json.dumps({"customer": forecast.customer, "forecast": forecast.rows}, indent=1), file=out)
        return 0
    cache = f", model cache {forecast.cache}" if forecast.cache else ""
    print(
        f"customer {forecast.customer}: {len(forecast.rows)} steps from {endpoint_name} "
        f"(variant {forecast.variant}, {forecast.latency_ms:.0f} ms{cache})",
        file=out,
    )
    print(format_table(forecast), file=out)
    return 0
