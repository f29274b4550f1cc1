"""The inference wire protocol shared by every server (the lean server, the MMS handler).

Request (`application/json`): `{"period": 7, "freq": "D", "intervals": true}`; only `period` is required.
A model trained with regressors also needs their future values, one per forecast date:
`{"period": 3, "regressors": {"temperature": [4.1, 3.8, 5.0]}}` (values for regressors the model does not
use are ignored, so one request shape serves a mixed fleet).
The blog sample sends the same object double-encoded (a JSON string holding the JSON text); it is
accepted too. Response: `{"customer": "7", "forecast": [{"ds": ..., "yhat": ..., ...}, ...]}`.
A request that cannot be answered raises one of `errors.py`'s serving errors (`InvalidRequestError`,
`PayloadTooLargeError`, `UnsupportedContentTypeError`), which the servers answer as
`{"error": "<code>", "message": "..."}` with the status `errors.http_status` gives.

Pure functions only: no server, no model, so the whole validation table is tested without Java.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetcast.serving.environment import MAX_PAYLOAD_ENV, MAX_PERIOD_ENV, Limits
from fleetcast.serving.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedContentTypeError

JSON_CONTENT_TYPE = "application/json"
OCTET_STREAM_CONTENT_TYPE = "application/octet-stream"  # the SageMaker Python SDK's default
REQUEST_FIELDS = ("period", "freq", "intervals", "regressors")
EXAMPLE_REQUEST = '{"period": 7}'
TARGET_MODEL_HEADER = "X-Amzn-SageMaker-Target-Model"
# Request values that reach a log line are cut to this many characters (a 20 MB url must not).
LOGGED_VALUE_CHARS = 200
# A model url is a local path: PATH_MAX bytes, each component at most NAME_MAX; checked before any
# filesystem call, which would otherwise fail with ENAMETOOLONG deep inside a load.
MAX_URL_BYTES = 4096
MAX_PATH_COMPONENT_BYTES = 255
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def bad_request(code: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(message, code=code)


def clip(value: object, limit: int = LOGGED_VALUE_CHARS) -> str:
    """`repr`-like text of a request value, cut to `limit` characters for logs and error messages."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def check_model_url(url: str) -> str:
    """A model directory path that the filesystem can take; 400 before any file is touched."""
    if "\x00" in url:
        raise bad_request("bad_model_url", "url contains a NUL character")
    size = len(url.encode("utf-8", "surrogatepass"))
    if size > MAX_URL_BYTES:
        raise bad_request("bad_model_url", f"url is {size} bytes; the limit is {MAX_URL_BYTES}")
    for component in url.split("/"):
        if len(component.encode("utf-8", "surrogatepass")) > MAX_PATH_COMPONENT_BYTES:
            raise bad_request(
                "bad_model_url",
                f"url component {clip(component, 40)!r} is longer than {MAX_PATH_COMPONENT_BYTES} bytes",
            )
    return url


def target_model_stem(target_model: str) -> str:
    """`eu/7.tar.gz` -> `7`: the customer a TargetModel names, by the training job's archive naming."""
    stem = target_model.rstrip("/").rpartition("/")[2]
    for suffix in ARCHIVE_SUFFIXES:
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def check_target_model(target_model: str | None, customer: str, model_name: str | None = None) -> None:
    """On /invocations: a TargetModel header must name the model being served, else 400 naming both.

    No header is fine (a single-model endpoint never sends one). The header matches the served model's
    name, or an archive of its customer (`<customer>.tar.gz`, in any folder).
    """
    if target_model is None or not target_model.strip():
        return
    target_model = target_model.strip()
    if target_model == model_name or target_model_stem(target_model) == customer:
        return
    served = f"model {model_name!r} (customer {customer})" if model_name else f"customer {customer}'s model"
    raise bad_request(
        "target_model_mismatch",
        f"{TARGET_MODEL_HEADER} names {clip(target_model, 100)!r}, but this route serves {served}; "
        "nothing was forecast",
    )


@dataclass(frozen=True)
class ForecastRequest:
    period: int
    freq: str | None = None  # None: the frequency the model was trained on
    intervals: bool | None = None  # None: intervals when the model has uncertainty samples
    # Each regressor's value at each forecast date (exactly `period` values), as sent; None: none sent.
    regressors: Mapping[str, tuple[float, ...]] | None = None


def _unsupported(content_type: str) -> UnsupportedContentTypeError:
    return UnsupportedContentTypeError(
        f"content type {clip(content_type.strip(), 100)!r} is not supported; send {JSON_CONTENT_TYPE} "
        f"with a body like {EXAMPLE_REQUEST}",
    )


def check_content_type(content_type: str | None) -> bool:
    """Accept `application/json` (any charset spelling of UTF-8); a missing header is taken as JSON.

    `application/octet-stream` (what the SageMaker Python SDK sends by default) is accepted provisionally:
    returns True, and the body must then parse as JSON or the request gets the 415.
    """
    if not content_type or not content_type.strip():
        return False
    media_type, *params = (part.strip().lower() for part in content_type.split(";"))
    if media_type == OCTET_STREAM_CONTENT_TYPE:
        return True
    if media_type != JSON_CONTENT_TYPE:
        raise _unsupported(content_type)
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            raise UnsupportedContentTypeError(
                f"charset {clip(value.strip(), 40)!r} is not supported; send UTF-8 JSON",
            )
    return False


def _decode_body(body: bytes | bytearray | str | None, limits: Limits) -> str:
    if body is None:
        body = b""
    size = len(body.encode() if isinstance(body, str) else body)
    if size > limits.max_payload_bytes:
        raise PayloadTooLargeError(
            f"request body is {size} bytes; the limit is {limits.max_payload_bytes} bytes "
            f"({MAX_PAYLOAD_ENV}={limits.max_payload_bytes // (1024 * 1024)})",
        )
    if isinstance(body, str):
        return body
    try:
        return bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("bad_json", "request body is not UTF-8 text; send JSON") from None


def _decode_body_or_415(
    body: bytes | bytearray | str | None, limits: Limits, content_type: str | None
) -> str:
    try:
        return _decode_body(body, limits)
    except InvalidRequestError:
        raise _unsupported(content_type or "") from None


def _load_json(text: str) -> Any:
    if not text.strip():
        raise bad_request("bad_json", f"request body is empty; send a JSON object like {EXAMPLE_REQUEST}")
    try:
        value = json.loads(text)
        if isinstance(value, str):
            # The blog sample's double-encoded form: a JSON string whose content is the JSON object.
            value = json.loads(value)
    except ValueError as exc:
        raise bad_request("bad_json", f"request body is not valid JSON ({exc})") from None
    except RecursionError:
        raise bad_request("bad_json", "request body is JSON nested too deeply") from None
    return value


def _period(value: Any, limits: Limits) -> int:
    text_integer = isinstance(value, str) and value.strip().isdigit()
    if isinstance(value, bool) or not (isinstance(value, int) or text_integer):
        raise bad_request(
            "bad_period", f"period must be an integer between 1 and {limits.max_period}, got {value!r}"
        )
    period = int(value)
    if not 1 <= period <= limits.max_period:
        raise bad_request(
            "bad_period",
            f"period must be between 1 and {limits.max_period} (the server's {MAX_PERIOD_ENV}), got {period}",
        )
    return period


def check_freq(value: Any) -> str:
    """A pandas offset alias with a positive step ('D', 'h', '15min', 'W', 'MS', ...)."""
    from pandas.tseries.frequencies import to_offset

    hint = "freq must be a pandas frequency alias such as 'D', 'h', '15min' or 'W'"
    if not isinstance(value, str) or not value.strip():
        raise bad_request("bad_freq", f"{hint}, got {value!r}")
    try:
        offset = to_offset(value.strip())
    except (ValueError, TypeError):
        raise bad_request("bad_freq", f"{hint}, got {value!r}") from None
    if offset.n <= 0:
        raise bad_request("bad_freq", f"freq must step forward in time, got {value!r}")
    return value.strip()


def _intervals(value: Any) -> bool:
    if not isinstance(value, bool):
        raise bad_request("bad_intervals", f"intervals must be true or false, got {value!r}")
    return value


def _regressors(value: Any, period: int) -> dict[str, tuple[float, ...]]:
    hint = (
        "regressors must be an object of number lists, one value per forecast date, "
        'like {"temperature": [4.1, 3.8]}'
    )
    if not isinstance(value, dict):
        raise bad_request("bad_regressors", f"{hint}; got {clip(value, 80)}")
    parsed = {}
    for name, values in value.items():
        if not isinstance(values, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values
        ):
            raise bad_request(
                "bad_regressors", f"regressor {clip(name, 64)!r}: {hint}; got {clip(values, 80)}"
            )
        if len(values) != period:
            raise bad_request(
                "bad_regressors",
                f"regressor {clip(name, 64)!r} has {len(values)} values; period {period} needs exactly "
                f"{period} (one per forecast date)",
            )
        parsed[name] = tuple(float(v) for v in values)
    return parsed


def check_regressors(
    request: ForecastRequest, needed: tuple[str, ...] | list[str], customer: str
) -> dict[str, tuple[float, ...]]:
    """The future values of every regressor the model needs; 400 naming the first one missing."""
    given = request.regressors or {}
    for name in needed:
        if name not in given:
            raise bad_request(
                "missing_regressor",
                f"the model for customer {customer} needs regressor {name!r}: send "
                f'"regressors": {{"{name}": [...]}} with {request.period} values (one per forecast date)',
            )
    return {name: given[name] for name in needed}


def parse_request(
    body: bytes | bytearray | str | None, content_type: str | None, limits: Limits | None = None
) -> ForecastRequest:
    """Validate one request body; InvalidRequestError, PayloadTooLargeError or UnsupportedContentTypeError
    name what to fix."""
    limits = limits or Limits()
    provisional = check_content_type(content_type)
    text = _decode_body_or_415(body, limits, content_type) if provisional else _decode_body(body, limits)
    try:
        fields = _load_json(text)
    except InvalidRequestError:
        if provisional:  # octet-stream that is not JSON: the content type is the problem
            raise _unsupported(content_type or "") from None
        raise
    if not isinstance(fields, dict):
        raise bad_request(
            "bad_request",
            f"request must be a JSON object like {EXAMPLE_REQUEST}, got {type(fields).__name__}",
        )
    unknown = sorted(set(fields) - set(REQUEST_FIELDS))
    if unknown:
        raise bad_request(
            "unknown_field",
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(REQUEST_FIELDS)}",
        )
    if "period" not in fields:
        raise bad_request("bad_period", f"period is required, e.g. {EXAMPLE_REQUEST}")
    period = _period(fields["period"], limits)
    return ForecastRequest(
        period=period,
        freq=None if fields.get("freq") is None else check_freq(fields["freq"]),
        intervals=None if fields.get("intervals") is None else _intervals(fields["intervals"]),
        regressors=None if fields.get("regressors") is None else _regressors(fields["regressors"], period),
    )


def _number(value: float) -> float | None:
    # JSON has no NaN/inf; a non-finite prediction is reported as null rather than breaking the body.
    return float(value) if math.isfinite(value) else None


def forecast_rows(ds: Any, yhat: Any, yhat_lower: Any = None, yhat_upper: Any = None) -> list[dict[str, Any]]:
    """A response's rows from a forecast's columns (numpy arrays; the bounds None without intervals):
    `{"ds": ISO text, "yhat": float[, "yhat_lower", "yhat_upper"]}` per date."""
    from fleetcast.model.compiled import iso_strings  # numpy: only the answering side needs it

    stamps, values = iso_strings(ds), yhat.tolist()
    if yhat_lower is None or yhat_upper is None:
        return [{"ds": d, "yhat": y} for d, y in zip(stamps, values, strict=True)]
    return [
        {"ds": d, "yhat": y, "yhat_lower": lo, "yhat_upper": hi}
        for d, y, lo, hi in zip(stamps, values, yhat_lower.tolist(), yhat_upper.tolist(), strict=True)
    ]


def encode_response(response: Mapping[str, Any]) -> bytes:
    """The success body: `{"customer": ..., "forecast": [rows of `ds` (ISO text) and float columns]}`."""
    forecast = [
        {key: (value if key == "ds" else _number(value)) for key, value in row.items()}
        for row in response["forecast"]
    ]
    return json.dumps({"customer": response["customer"], "forecast": forecast}).encode()


def resolve_intervals(request: ForecastRequest, has_intervals: bool, customer: str) -> bool:
    """Whether to answer with intervals: the request's choice, else whatever the model can give."""
    intervals = has_intervals if request.intervals is None else request.intervals
    if intervals and not has_intervals:
        raise bad_request(
            "intervals_unavailable",
            f"the model for customer {customer} was trained with uncertainty_samples=0, so it has "
            'no intervals; send "intervals": false',
        )
    return intervals
