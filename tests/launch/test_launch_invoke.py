"""`invoke`'s core with a real sagemaker-runtime client under botocore's Stubber: retries, errors, table."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from launch.invoke import InvokeError, forecast_table, invoke_forecast

ANSWER = {
    "customer": "7",
    "forecast": [
        {"ds": "2023-01-01T00:00:00", "yhat": 12.3456, "yhat_lower": 10.0, "yhat_upper": 14.5},
        {"ds": "2023-01-02T00:00:00", "yhat": 11.0, "yhat_lower": 9.25, "yhat_upper": 13.0},
    ],
}


def _runtime() -> Any:
    return boto3.session.Session(region_name="us-east-1").client("sagemaker-runtime")


def _body(payload: dict[str, Any]) -> StreamingBody:
    data = json.dumps(payload).encode()
    return StreamingBody(io.BytesIO(data), len(data))


def _expected(customer: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "EndpointName": "fleetcast-demo",
        "TargetModel": f"{customer}.tar.gz",
        "ContentType": "application/json",
        "Accept": "application/json",
        "Body": json.dumps(payload).encode(),
    }


def test_model_not_ready_is_retried_with_growing_backoff() -> None:
    runtime, sleeps = _runtime(), []
    with Stubber(runtime) as stub:
        for _ in range(3):
            stub.add_client_error(
                "invoke_endpoint",
                service_error_code="ModelNotReadyException",
                service_message="Model is loading",
                http_status_code=429,
                expected_params=_expected("7", {"period": 2, "intervals": True}),
            )
        stub.add_response(
            "invoke_endpoint",
            {"Body": _body(ANSWER), "ContentType": "application/json"},
            _expected("7", {"period": 2, "intervals": True}),
        )
        answer = invoke_forecast(runtime, "fleetcast-demo", "7", 2, intervals=True, sleep=sleeps.append)
        stub.assert_no_pending_responses()
    assert answer == ANSWER
    assert sleeps == [1.0, 2.0, 4.0]


def test_model_not_ready_gives_up_after_max_attempts() -> None:
    runtime, sleeps = _runtime(), []
    with Stubber(runtime) as stub:
        for _ in range(2):
            stub.add_client_error("invoke_endpoint", "ModelNotReadyException", "Model is loading", 429)
        with pytest.raises(InvokeError, match=r"7.tar.gz still not loaded after 2 attempts"):
            invoke_forecast(runtime, "fleetcast-demo", "7", 7, max_attempts=2, sleep=sleeps.append)
    assert sleeps == [1.0]


def test_a_model_error_surfaces_the_container_message() -> None:
    runtime = _runtime()
    container_error = json.dumps({"error": "bad_request", "message": "period must be 1..366, got 0"})
    with Stubber(runtime) as stub:
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code="ModelError",
            service_message="Received client error (400) from primary",
            http_status_code=424,
            response_meta={},
            modeled_fields={"OriginalStatusCode": 400, "OriginalMessage": container_error},
        )
        with pytest.raises(InvokeError, match=r"customer 7: bad_request: period must be 1\.\.366, got 0"):
            invoke_forecast(runtime, "fleetcast-demo", "7", 0, sleep=lambda _: None)


def test_the_request_is_validated_before_sending() -> None:
    from launch.common import InvalidRequestError

    runtime = _runtime()
    with (
        Stubber(runtime),
        pytest.raises(InvalidRequestError, match=r"TargetModel: ' 7\.tar\.gz' does not match"),
    ):
        invoke_forecast(runtime, "fleetcast-demo", " 7", 7)


def test_forecast_table_with_and_without_intervals() -> None:
    table = forecast_table(ANSWER).splitlines()
    assert table[0] == "customer 7: 2 step(s)"
    assert table[1].split() == ["ds", "yhat", "yhat_lower", "yhat_upper"]
    assert table[3].split() == ["2023-01-01T00:00:00", "12.346", "10.000", "14.500"]
    point_only = {"customer": "8", "forecast": [{"ds": "2023-01-01T00:00:00", "yhat": 3.0}]}
    table = forecast_table(point_only).splitlines()
    assert table[1].split() == ["ds", "yhat"]
    assert table[3].split() == ["2023-01-01T00:00:00", "3.000"]
