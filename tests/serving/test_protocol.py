"""The request validation table: each bad request gets its status, error code and an actionable message."""

from __future__ import annotations

import json

import pytest

from fleetcast.serving.errors import ServingError, error_body, http_status
from fleetcast.serving.protocol import (
    ForecastRequest,
    Limits,
    check_content_type,
    check_model_url,
    check_target_model,
    clip,
    encode_response,
    parse_request,
)

JSON = "application/json"
LIMITS = Limits()


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'{"period": 7}', JSON, ForecastRequest(7)),
        (bytearray(b'{"period": 1}'), JSON, ForecastRequest(1)),
        ('{"period": 366}', JSON, ForecastRequest(366)),
        (b'{"period": 7, "freq": "h", "intervals": false}', JSON, ForecastRequest(7, "h", False)),
        (b'{"period": 7, "freq": " 15min ", "intervals": true}', JSON, ForecastRequest(7, "15min", True)),
        (b'{"period": 7, "freq": null, "intervals": null}', JSON, ForecastRequest(7)),
        # The blog sample's double-encoded body: a JSON string holding the JSON object.
        (json.dumps(json.dumps({"period": 5, "freq": "D"})).encode(), JSON, ForecastRequest(5, "D")),
        (b'{"period": "12"}', JSON, ForecastRequest(12)),
        (b'{"period": 7}', "application/json; charset=utf-8", ForecastRequest(7)),
        (b'{"period": 7}', "Application/JSON;charset=UTF-8", ForecastRequest(7)),
        (b'{"period": 7}', None, ForecastRequest(7)),
        (b'  {"period": 7}\n', "", ForecastRequest(7)),
    ],
)
def test_valid_requests(body, content_type, expected):
    assert parse_request(body, content_type, LIMITS) == expected


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code", "fragment"),
    [
        (b'{"period": 7', JSON, 400, "bad_json", "not valid JSON"),
        (b"", JSON, 400, "bad_json", "body is empty"),
        (None, JSON, 400, "bad_json", "body is empty"),
        (b"   ", JSON, 400, "bad_json", "body is empty"),
        (b"\xff\xfe{", JSON, 400, "bad_json", "not UTF-8"),
        (b'"period=7"', JSON, 400, "bad_json", "not valid JSON"),
        (b"[7]", JSON, 400, "bad_request", "must be a JSON object"),
        (b'"[7]"', JSON, 400, "bad_request", "must be a JSON object"),
        (b"7", JSON, 400, "bad_request", "must be a JSON object"),
        (b"{}", JSON, 400, "bad_period", "period is required"),
        (b'{"freq": "D"}', JSON, 400, "bad_period", "period is required"),
        (b'{"period": 0}', JSON, 400, "bad_period", "between 1 and 366"),
        (b'{"period": -3}', JSON, 400, "bad_period", "between 1 and 366"),
        (b'{"period": 367}', JSON, 400, "bad_period", "got 367"),
        (b'{"period": 7.5}', JSON, 400, "bad_period", "must be an integer"),
        (b'{"period": 7.0}', JSON, 400, "bad_period", "must be an integer"),
        (b'{"period": true}', JSON, 400, "bad_period", "must be an integer"),
        (b'{"period": "seven"}', JSON, 400, "bad_period", "must be an integer"),
        (b'{"period": null}', JSON, 400, "bad_period", "must be an integer"),
        (b'{"period": [7]}', JSON, 400, "bad_period", "must be an integer"),
        (b'{"period": 7, "freq": "fortnightly"}', JSON, 400, "bad_freq", "pandas frequency alias"),
        (b'{"period": 7, "freq": ""}', JSON, 400, "bad_freq", "pandas frequency alias"),
        (b'{"period": 7, "freq": 1}', JSON, 400, "bad_freq", "pandas frequency alias"),
        (b'{"period": 7, "freq": "-1D"}', JSON, 400, "bad_freq", "step forward"),
        (b'{"period": 7, "freq": "0h"}', JSON, 400, "bad_freq", "step forward"),
        (b'{"period": 7, "intervals": "yes"}', JSON, 400, "bad_intervals", "true or false"),
        (b'{"period": 7, "intervals": 1}', JSON, 400, "bad_intervals", "true or false"),
        (b'{"periods": 7}', JSON, 400, "unknown_field", "'periods'; allowed: period, freq, intervals"),
        (b'{"period": 7, "a": 1, "b": 2}', JSON, 400, "unknown_field", "fields 'a', 'b'"),
        (b'{"period": 7}', "text/csv", 415, "unsupported_content_type", "send application/json"),
        (
            b"period=7",
            "application/x-www-form-urlencoded",
            415,
            "unsupported_content_type",
            "application/json",
        ),
        (b'{"period": 7}', "application/json; charset=latin-1", 415, "unsupported_content_type", "UTF-8"),
        # content type is checked before the body is read
        (b"not json", "text/plain", 415, "unsupported_content_type", "text/plain"),
    ],
)
def test_invalid_requests(body, content_type, status, code, fragment):
    with pytest.raises(ServingError) as caught:
        parse_request(body, content_type, LIMITS)
    error = caught.value
    assert (http_status(error), error.code) == (status, code)
    assert fragment in error.message
    assert json.loads(error_body(error)) == {"error": code, "message": error.message}


def test_payload_cap_gives_413_before_parsing():
    limits = Limits(max_payload_bytes=64)
    body = b'{"period": 7}' + b" " * 51
    assert len(body) == 64
    assert parse_request(body, JSON, limits) == ForecastRequest(7)
    with pytest.raises(ServingError) as caught:
        parse_request(body + b" ", JSON, limits)
    assert (http_status(caught.value), caught.value.code) == (413, "payload_too_large")
    assert "65 bytes" in caught.value.message
    with pytest.raises(ServingError) as caught:
        parse_request(b"{" * 65, JSON, limits)  # not even valid JSON: size is checked first
    assert http_status(caught.value) == 413


def test_the_period_limit_is_named_in_the_error():
    limits = Limits(max_period=30)
    assert parse_request(b'{"period": 30}', JSON, limits).period == 30
    with pytest.raises(ServingError, match=r"between 1 and 30 .*FLEETCAST_MAX_PERIOD.*got 31"):
        parse_request(b'{"period": 31}', JSON, limits)


def test_missing_content_type_is_taken_as_json():
    check_content_type(None)
    check_content_type("   ")


def test_encode_response_keeps_rows_and_turns_non_finite_numbers_into_null():
    body = encode_response(
        {
            "customer": "7",
            "forecast": [
                {"ds": "2023-01-01T00:00:00", "yhat": 1.5, "yhat_lower": float("nan"), "yhat_upper": 2.0}
            ],
        }
    )
    assert json.loads(body) == {
        "customer": "7",
        "forecast": [{"ds": "2023-01-01T00:00:00", "yhat": 1.5, "yhat_lower": None, "yhat_upper": 2.0}],
    }


def test_octet_stream_is_json_when_it_parses_else_415():
    parsed = parse_request(b'{"period": 4}', "application/octet-stream", Limits())
    assert parsed.period == 4
    for body in (b"period=4", b"\xff\xfe", b""):
        with pytest.raises(ServingError) as caught:
            parse_request(body, "application/octet-stream", Limits())
        assert http_status(caught.value) == 415 and caught.value.code == "unsupported_content_type"
    # valid JSON that is not a request stays a 400 naming the problem
    with pytest.raises(ServingError) as caught:
        parse_request(b'{"period": 0}', "application/octet-stream", Limits())
    assert http_status(caught.value) == 400


def test_deeply_nested_json_is_a_400():
    with pytest.raises(ServingError) as caught:
        parse_request("[" * 100_000 + "]" * 100_000, "application/json", Limits())
    assert http_status(caught.value) == 400 and caught.value.code == "bad_json"


@pytest.mark.parametrize(
    ("header", "ok"),
    [(None, True), ("", True), ("7.tar.gz", True), ("eu/7.tar.gz", True), ("7", True), ("m7", True),
     ("3.tar.gz", False), ("77.tar.gz", False), ("7.tar.gz/x", False)],
)  # fmt: skip
def test_target_model_must_name_the_served_model(header, ok):
    if ok:
        check_target_model(header, "7", "m7")
    else:
        with pytest.raises(ServingError) as caught:
            check_target_model(header, "7", "m7")
        assert http_status(caught.value) == 400 and caught.value.code == "target_model_mismatch"


def test_model_urls_are_checked_before_the_filesystem():
    assert check_model_url("/opt/ml/models/m1/model") == "/opt/ml/models/m1/model"
    for url in ("/opt/" + "x" * 256 + "/model", "/" + "a/" * 3000, "/opt/\x00/model"):
        with pytest.raises(ServingError) as caught:
            check_model_url(url)
        assert http_status(caught.value) == 400 and caught.value.code == "bad_model_url"


def test_clip_keeps_logs_short():
    assert clip("short") == "short"
    clipped = clip("x" * 10_000)
    assert len(clipped) < 260 and "10000 characters" in clipped
