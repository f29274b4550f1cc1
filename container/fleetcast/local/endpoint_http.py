"""The InvokeEndpoint HTTP front of the local multi-model endpoint (what `sagemaker-runtime` talks to).

`boto3.client("sagemaker-runtime", endpoint_url=...)` works unmodified: requests arrive SigV4-signed (the
signature is not checked), errors carry `x-amzn-ErrorType` and a JSON body with the members botocore's
service model declares, so boto3 raises its typed exceptions (`ValidationError`, `ModelError`, ...).
Served by werkzeug's threaded server speaking HTTP/1.1, so boto3's kept-alive connections are reused.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from fleetcast.local.endpoint import (
    CustomerNotFoundError,
    EndpointError,
    MultiModelEndpoint,
    PayloadTooLargeError,
    RequestTimings,
    ValidationError,
)
from fleetcast.serving.protocol import clip

log = logging.getLogger(__name__)

# botocore's EndpointName shape: ^[a-zA-Z0-9](-*[a-zA-Z0-9])* , at most 63 characters.
ENDPOINT_NAME = re.compile(r"\A[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}\Z")
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # InvokeEndpoint's documented request limit
TARGET_MODEL_HEADER = "X-Amzn-SageMaker-Target-Model"
TARGET_VARIANT_HEADER = "X-Amzn-SageMaker-Target-Variant"
CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"


def _error_response(error: EndpointError) -> Response:
    response = jsonify(error.body())
    response.status_code = error.status
    response.headers["x-amzn-ErrorType"] = error.error_type
    if isinstance(error, PayloadTooLargeError):
        response.headers["Connection"] = "close"  # the rest of the oversized body is never read
    return response


def _add_customer_route(app: Flask, endpoint: MultiModelEndpoint) -> None:
    @app.get("/fleetcast/customers/<customer>")
    def customer_version(customer: str) -> Response:
        """Which TargetModel serves a customer, from the fleet manifest under the models prefix (read on
        every request: unlike a model, the manifest is meant to change). Not a SageMaker API: the same
        resolution `fleetcast invoke --customer` makes, for scripts and people."""
        try:
            entry = endpoint.customer_version(customer)
        except LookupError as exc:
            return _error_response(CustomerNotFoundError(str(exc)))
        return jsonify({"customer": entry.customer, "target_model": entry.target_model, "run": entry.run})


def create_app(
    endpoint: MultiModelEndpoint, *, endpoint_name: str | None = None, variant: str = "AllTraffic"
) -> Flask:
    """`endpoint_name`: the only name answered (others get ValidationError); None answers any valid name."""
    app = Flask("fleetcast.local.endpoint")

    @app.errorhandler(EndpointError)
    def _endpoint_error(error: EndpointError) -> Response:
        return _error_response(error)

    @app.get("/ping")
    def ping() -> Response:
        healthy = endpoint.container.ping()
        response = jsonify(
            {
                "status": "ok" if healthy else "container not answering",
                "container": endpoint.container.base_url,
            }
        )
        response.status_code = 200 if healthy else 503
        return response

    @app.get("/fleetcast/stats")
    def stats() -> Response:
        return jsonify(endpoint.snapshot())

    _add_customer_route(app, endpoint)

    @app.post("/endpoints/<name>/invocations")
    def invocations(name: str) -> Response:
        started = time.perf_counter()
        # The body is read first, so an early error never leaves it unread on a kept-alive connection.
        if (request.content_length or 0) > MAX_PAYLOAD_BYTES:
            raise PayloadTooLargeError(
                f"the request body is over the {MAX_PAYLOAD_BYTES} byte InvokeEndpoint limit"
            )
        body = request.get_data(cache=False)
        if len(body) > MAX_PAYLOAD_BYTES:
            raise PayloadTooLargeError(
                f"the request body is over the {MAX_PAYLOAD_BYTES} byte InvokeEndpoint limit"
            )
        if not ENDPOINT_NAME.match(name):
            raise ValidationError(
                f"endpoint name {clip(name, 80)!r} does not match [a-zA-Z0-9](-*[a-zA-Z0-9])* (max 63)"
            )
        if endpoint_name is not None and name != endpoint_name:
            raise ValidationError(
                f"Endpoint {name} not found (this local endpoint serves {endpoint_name!r})."
            )
        wanted_variant = request.headers.get(TARGET_VARIANT_HEADER)
        if wanted_variant and wanted_variant != variant:
            raise ValidationError(
                f"TargetVariant {clip(wanted_variant, 80)!r} does not exist; this endpoint has {variant!r}"
            )
        timings = RequestTimings(target_model=request.headers.get(TARGET_MODEL_HEADER) or "")
        try:
            container_response, _ = endpoint.invoke(
                request.headers.get(TARGET_MODEL_HEADER), body, dict(request.headers), timings
            )
        except EndpointError as error:
            _log_request(name, timings, started, f"{error.status} {error.error_type}")
            response = _error_response(error)
            response.headers.update(timings.headers())
            return response
        response = Response(container_response.body, status=200)
        content_type = _header(container_response.headers, "Content-Type")
        if content_type:
            response.headers["Content-Type"] = content_type
        custom = _header(container_response.headers, CUSTOM_ATTRIBUTES_HEADER)
        if custom:
            response.headers[CUSTOM_ATTRIBUTES_HEADER] = custom
        response.headers["x-Amzn-Invoked-Production-Variant"] = variant
        response.headers.update(timings.headers())
        _log_request(name, timings, started, "200")
        return response

    @app.errorhandler(404)
    def _not_found(_: Any) -> Response:
        return _error_response(ValidationError(f"no such API: {request.method} {request.path}"))

    @app.errorhandler(405)
    def _bad_method(_: Any) -> Response:
        return _error_response(ValidationError(f"method {request.method} is not allowed on {request.path}"))

    @app.errorhandler(HTTPException)
    def _refused(error: HTTPException) -> Response:
        # Anything else werkzeug refuses: the status it chose, boto3's error shape, never HTML.
        response = _error_response(ValidationError(error.description or error.name or "request refused"))
        response.status_code = error.code or 400  # the status the HTTP layer chose
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unexpected error in %s %s", request.method, clip(request.path))
        return _error_response(EndpointError(clip(f"internal failure: {type(error).__name__}: {error}", 500)))

    return app


def _log_request(endpoint_name: str, timings: RequestTimings, started: float, outcome: str) -> None:
    log.info(
        "invoke endpoint=%s model=%s id=%s -> %s cache=%s disk=%s download_ms=%.0f load_ms=%.0f "
        "load_wait_ms=%.0f invoke_ms=%.0f total_ms=%.0f",
        clip(endpoint_name, 80),
        clip(timings.target_model, 100) or "-",
        timings.model_name or "-",
        outcome,
        timings.cache,
        timings.disk,
        timings.download_ms,
        timings.load_ms,
        timings.load_wait_ms,
        timings.invoke_ms,
        (time.perf_counter() - started) * 1000.0,
    )


def _header(headers: dict[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((value for key, value in headers.items() if key.lower() == lowered), None)


class _QuietHandler(WSGIRequestHandler):
    # HTTP/1.1 keeps boto3's and the benchmark's connections alive between requests.
    protocol_version = "HTTP/1.1"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Our own per-request line (with the MME metrics) replaces werkzeug's access log.
        pass


@dataclass
class RunningEndpoint:
    server: BaseWSGIServer
    thread: threading.Thread
    endpoint: MultiModelEndpoint

    @property
    def port(self) -> int:
        return self.server.server_port

    @property
    def url(self) -> str:
        return f"http://{self.server.server_address[0]}:{self.port}"

    def stop(self) -> None:
        """Stop serving (idempotent); loaded models stay in the container, as on a front-end restart."""
        if not self.thread.is_alive():
            return
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()
        self.endpoint.close()


def start_endpoint(
    endpoint: MultiModelEndpoint,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    endpoint_name: str | None = None,
    variant: str = "AllTraffic",
) -> RunningEndpoint:
    """Serve in a background thread (port 0: a free port); `stop()` shuts it down."""
    app = create_app(endpoint, endpoint_name=endpoint_name, variant=variant)
    server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="local-endpoint", daemon=True)
    thread.start()
    return RunningEndpoint(server=server, thread=thread, endpoint=endpoint)


def serve_endpoint_forever(
    endpoint: MultiModelEndpoint,
    *,
    host: str,
    port: int,
    endpoint_name: str | None,
    variant: str,
) -> int:
    """Run until SIGTERM/SIGINT (the CLI's `local-endpoint`)."""
    running = start_endpoint(endpoint, host=host, port=port, endpoint_name=endpoint_name, variant=variant)
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("received %s, stopping the local endpoint", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info(
        "local multi-model endpoint listening on %s (models %s, container %s, max loaded %s)",
        running.url,
        endpoint.source.description,
        endpoint.container.base_url,
        endpoint.policy.max_loaded or "unlimited",
    )
    while not stop.wait(1.0):
        pass
    running.stop()
    return 0
