"""The handler service Multi Model Server runs for each loaded model (one worker process per model).

MMS imports this module in a fresh worker, instantiates its single class (MMS requires exactly one class
here), calls `initialize(context)` when `POST /models` loads the model, then `handle(data, context)` for
each batch of invocations. MMS swallows exceptions from `initialize`, so `POST /models` answers 200 even
for a broken model directory; the failure is kept and returned on every invoke as a JSON error naming the
directory and the problem (a 4xx: `errors.http_status` of the loader's ModelInvalidError or
ModelMissingError), never as a traceback or a 500.

The class is instantiated before `initialize`, outside MMS's exception guard: a MemoryError raised there
is what makes MMS answer `POST /models` with 507, the multi-model contract's "out of memory" (the
platform then unloads idle models and retries). MMS keeps such a model registered with no worker
(`GET /models/<name>` lists it; a new `POST /models` gets 409 until `DELETE /models/<name>`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from fleetcast.serving.environment import ServingEnvironment
from fleetcast.serving.errors import ModelInvalidError, ServingError, error_body, http_status, internal_error
from fleetcast.serving.memory import memory_shortfall
from fleetcast.serving.predictors import Predictor, load_model
from fleetcast.serving.protocol import (
    JSON_CONTENT_TYPE,
    TARGET_MODEL_HEADER,
    check_target_model,
    clip,
    encode_response,
    parse_request,
)

log = logging.getLogger("fleetcast.serving.mms")


def _header(headers: dict[str, Any], wanted: str) -> str | None:
    wanted = wanted.lower()
    for name, value in headers.items():
        if isinstance(name, str) and name.lower() == wanted:
            return value.decode("utf-8", "replace") if isinstance(value, bytes | bytearray) else str(value)
    return None


def _content_type(headers: dict[str, Any]) -> str | None:
    found = _header(headers, "content-type")
    if found is not None:
        return found
    # MMS also files the body's own content type under the parameter name.
    body_headers = headers.get("body")
    if isinstance(body_headers, dict):
        return body_headers.get("content-type")
    return None


def _warm_up(model_dir: Path) -> None:
    """What a model's first forecast would otherwise pay, paid at load: the holiday calendars it reads."""
    import json

    from fleetcast.model import country_holidays
    from fleetcast.model.archive import METADATA_FILE

    try:
        metadata = json.loads((model_dir / METADATA_FILE).read_bytes())
        if isinstance(metadata, dict):
            country_holidays.warm_up_for(metadata)
    except Exception as exc:  # a warm-up is an optimisation: the model is loaded and serves either way
        log.warning("warm-up of %s skipped: %s: %s", model_dir, type(exc).__name__, exc)


class ForecastHandlerService:
    """Loads one customer's model at `initialize`, answers forecast requests in `handle`."""

    def __init__(self) -> None:
        # Read once per MMS worker process (each model's worker is a process of its own).
        self.environment = ServingEnvironment.read()
        shortfall = memory_shortfall(self.environment.min_free_bytes)
        if shortfall:
            log.error("refusing to load another model (507): %s", shortfall)
            raise MemoryError(shortfall)
        self.predictor: Predictor | None = None
        self.load_error: ServingError | None = None
        # The handler cannot tell /invocations from /models/<name>/invoke, so a TargetModel header is
        # checked on both: the platform's own header names the archive training wrote for this very
        # customer (`<customer>.tar.gz`), so it always matches there, and a request for another model gets
        # a 400 instead of this customer's forecast.

    def initialize(self, context: Any) -> None:
        model_dir = Path(str(context.system_properties.get("model_dir")))
        started = time.perf_counter()
        try:
            # The same loader as the lean server's: it validates the whole model now (fields of the wrong
            # type included), so a broken model is a ModelInvalidError here, not a crash at invoke time.
            self.predictor = load_model(model_dir).predictor
            _warm_up(model_dir)
        except ServingError as exc:
            self.load_error = exc
        except Exception as exc:  # anything else must still become a readable answer, not a dead worker
            log.exception("unexpected failure loading %s", model_dir)
            self.load_error = ModelInvalidError(
                f"cannot serve the model in {model_dir}: {type(exc).__name__}: {exc}"
            )
        if self.load_error is not None:
            log.error("model %s not servable: %s", context.model_name, self.load_error.message)
        else:
            log.info("model %s ready in %.0f ms", context.model_name, (time.perf_counter() - started) * 1000)

    def handle(self, data: list[dict[str, Any]] | None, context: Any) -> list[bytes] | None:
        if data is None:
            return None
        return [self._answer(index, item, context) for index, item in enumerate(data)]

    def _answer(self, index: int, item: dict[str, Any], context: Any) -> bytes:
        context.set_response_content_type(index, JSON_CONTENT_TYPE)
        try:
            headers = context.get_all_request_header(index) or {}
            body = item.get("body", item.get("data")) if isinstance(item, dict) else item
            if self.predictor is not None:
                check_target_model(_header(headers, TARGET_MODEL_HEADER), self.predictor.customer)
            request = parse_request(body, _content_type(headers), self.environment.limits)
            if self.predictor is not None:
                return encode_response(self.predictor.forecast(request))
            # (not re-raised: raising one exception object on every request would grow its traceback)
            error = self.load_error or ModelInvalidError("the model was never initialized")
        except ServingError as exc:
            error = exc
        except Exception as exc:
            log.exception("forecast failed for model %s", context.model_name)
            error = internal_error(exc)
        status = http_status(error)
        log.warning("model %s: %d %s: %s", context.model_name, status, error.code, clip(error.message, 500))
        context.set_response_status(code=status, phrase=error.code, idx=index)
        return error_body(error)
