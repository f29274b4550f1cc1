"""What can go wrong while serving, in domain terms, and the one table that gives each its HTTP status.

Predictors, the request parser and the lean registry raise these errors and never name a status; the
lean app, the MMS handler and the local endpoint ask `http_status(error)` when they answer. Each error
carries a stable code (`"bad_period"`, `"model_not_found"`, ...) and a readable message, and the
container's error body is `{"error": code, "message": message}` (`error_body`).
"""

from __future__ import annotations

import json
from http import HTTPStatus


class ServingError(Exception):
    """Base of every serving error: a stable code and a message that says what to do."""

    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r})"


class InvalidRequestError(ServingError):
    """The request itself is wrong: bad JSON, a bad field, a name or url the server cannot take."""

    code = "bad_request"


class PayloadTooLargeError(ServingError):
    code = "payload_too_large"


class UnsupportedContentTypeError(ServingError):
    code = "unsupported_content_type"


class ModelNotLoadedError(ServingError):
    """The named model is not loaded."""

    code = "model_not_found"


class ModelMissingError(ServingError):
    """The model directory to load does not exist."""

    code = "model_missing"


class ModelAlreadyLoadedError(ServingError):
    code = "model_already_loaded"


class ModelInvalidError(ServingError):
    """The model's files are corrupt or wrong-typed: the model's fault, never the server's."""

    code = "model_invalid"


def invalid_model(model_dir: object, problem: str) -> ModelInvalidError:
    """The error every predictor raises for a model directory it cannot serve."""
    return ModelInvalidError(f"cannot serve the model in {model_dir}: {problem}")


class OutOfResourcesError(ServingError):
    """No memory or store space for another model: the multi-model platform then evicts and retries."""

    code = "insufficient_memory"


class ModelNotReadyError(ServingError):
    """The model is still loading; retry (the endpoint's ModelNotReadyException)."""

    code = "model_not_ready"


class UnavailableError(ServingError):
    """What serves the model is not answering (the endpoint's ServiceUnavailable)."""

    code = "service_unavailable"


class ModelFailedError(ServingError):
    """The model container answered with an error, which the endpoint relays (boto3's ModelError)."""

    code = "model_error"


class RefusedError(ServingError):
    """A request the HTTP layer itself refused (a request line or header too long, a wrong method).

    The one error that carries a status: the HTTP parser that refused the request chose it.
    """

    def __init__(self, status: int, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code or _status_code_name(status))
        self.status = status


# The one mapping from serving errors to HTTP statuses (a subclass takes its nearest listed ancestor's).
HTTP_STATUS: dict[type[ServingError], int] = {
    InvalidRequestError: 400,
    ModelInvalidError: 400,
    ModelNotLoadedError: 404,
    ModelMissingError: 404,
    ModelAlreadyLoadedError: 409,
    PayloadTooLargeError: 413,
    UnsupportedContentTypeError: 415,
    ModelFailedError: 424,
    ModelNotReadyError: 429,
    ServingError: 500,
    UnavailableError: 503,
    OutOfResourcesError: 507,
}


def http_status(error: BaseException) -> int:
    """The HTTP status that answers `error` (500 for anything that is not a ServingError)."""
    if isinstance(error, RefusedError):
        return error.status
    for cls in type(error).__mro__:
        status = HTTP_STATUS.get(cls)  # type: ignore[call-overload]
        if status is not None:
            return status
    return HTTP_STATUS[ServingError]


def internal_error(exc: BaseException) -> ServingError:
    """An unexpected failure, as an error the client can read (its type and message, no traceback)."""
    return ServingError(f"forecast failed: {type(exc).__name__}: {exc}")


def as_serving_error(exc: BaseException) -> ServingError:
    return exc if isinstance(exc, ServingError) else internal_error(exc)


def error_body(error: ServingError) -> bytes:
    """The container's JSON error body."""
    return json.dumps(error.to_dict()).encode()


def _status_code_name(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "refused"
