"""The lean multi-model server's WSGI app: the SageMaker MME container API in one Flask app.

No Java and no process per model: a loaded model is a few kilobytes of compiled numbers (see
../predictors.py), so one worker process holds thousands. Endpoints (same request, response and error
format as the MMS handler; errors are `{"error": code, "message": ...}`, status from ../errors.py):

    GET    /ping                      200 {"status": "Healthy"}
    POST   /models                    {"model_name", "url"} -> 200; 409 loaded; 404 no dir; 400 corrupt,
                                      over-long name or url; 507 over the memory budget
                                      (FLEETCAST_MEMORY_MB) or the registry full (FLEETCAST_MAX_MODELS,
                                      or its tmpfs out of space)
    GET    /models?limit=&next_page_token=   {"models": [{"modelName", "modelUrl"}], "nextPageToken"?};
                                      limit 1..100 (0 or less is a 400)
    GET    /models/<name>             200 description; 404 not loaded
    DELETE /models/<name>             200 once every worker has dropped it; 404 not loaded
    POST   /models/<name>/invoke      forecast; 404 not loaded
    POST   /invocations               single-model mode: the model in /opt/ml/model; multi-model mode:
                                      `?model_name=` (as MMS), else 400. A TargetModel header naming
                                      another customer's archive is a 400, never that forecast.

Every error, including werkzeug's and gunicorn's own refusals, is that JSON body; request values in
logs and messages are clipped.

Multi-worker design (SAGEMAKER_MODEL_SERVER_WORKERS, default one per core), chosen by measurement: N
gunicorn threaded workers coordinated through `registry.SharedRegistry` (one SQLite database in
/dev/shm holding every loaded model's compiled form, a generation counter in shared memory). Each
worker keeps a bounded LRU of built predictors (FLEETCAST_WORKER_CACHE_MODELS, default 20,000, ~4 KiB
each); a model it has not built yet is built from its registry row on first use (~0.05 ms, no model
directory read). A background thread in every worker applies only the unloads since its last
generation, within milliseconds, and DELETE waits until every worker has confirmed. One process with
threads is GIL-bound: on 2 cores, 1 worker x 8 threads served 946 req/s with 8 clients, 2 workers x 4
threads 2,007 req/s, for ~100 MB more RSS (a second copy of the interpreter, Prophet and pandas, mostly
shared copy-on-write).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from fleetcast.paths import sagemaker_paths
from fleetcast.serving.environment import DEFAULT_WORKER_CACHE_MODELS, MULTI_MODEL_ENV, Limits
from fleetcast.serving.errors import (
    InvalidRequestError,
    ModelAlreadyLoadedError,
    ModelNotLoadedError,
    RefusedError,
    ServingError,
    error_body,
    http_status,
    internal_error,
)
from fleetcast.serving.lean.budget import MemoryBudget
from fleetcast.serving.lean.registry import SharedRegistry
from fleetcast.serving.lean.worker_cache import WorkerModels
from fleetcast.serving.memory import server_rss_bytes
from fleetcast.serving.predictors import Predictor, load_model
from fleetcast.serving.protocol import (
    JSON_CONTENT_TYPE,
    TARGET_MODEL_HEADER,
    check_model_url,
    check_target_model,
    clip,
    encode_response,
    parse_request,
)

log = logging.getLogger("fleetcast.serving.lean")

WORKER_HEADER = "X-Fleetcast-Worker"
EXAMPLE_LOAD = '{"model_name": "m1", "url": "/opt/ml/models/m1/model"}'
# MMS's list API: at most 100 per page, `limit` and `next_page_token` (an offset) as query parameters.
MAX_PAGE = 100
RSS_SAMPLE_SECONDS = 0.05
# How long DELETE waits for the other workers to confirm they dropped the model.
DELETE_ACK_SECONDS = 5.0


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body), status=status, mimetype=JSON_CONTENT_TYPE)


def _error(error: ServingError) -> Response:
    """Every error answer: the status errors.http_status gives, the JSON error body."""
    return Response(error_body(error), status=http_status(error), mimetype=JSON_CONTENT_TYPE)


class LeanServer:
    """State shared by the Flask views: registry, this worker's models, limits, budget."""

    def __init__(
        self,
        registry: SharedRegistry,
        workers: int,
        budget: MemoryBudget,
        limits: Limits,
        cache_models: int = DEFAULT_WORKER_CACHE_MODELS,
    ) -> None:
        self.registry = registry
        self.models = WorkerModels(registry, cache_models)
        self.workers = workers
        self.budget = budget
        self.limits = limits
        self.root_pid = os.getpid()  # the gunicorn master (the app is built before it forks)
        self.single_model: Predictor | None = None
        self.warm_model: Path | None = None  # a tiny model each new worker rehearses on
        self.single_model_error: ServingError | None = None
        self.multi_model = True  # SAGEMAKER_MULTI_MODEL: which model /invocations serves
        self._single_lock = threading.Lock()
        self._rss, self._rss_sampled_at = 0, float("-inf")

    def measured_rss(self) -> int:
        """The server's RSS (all its processes), measured at most every RSS_SAMPLE_SECONDS: reading /proc
        for every process on each load cost more than the rest of the budget check, and RSS moves by
        well under a megabyte in that time."""
        now = time.monotonic()
        if now - self._rss_sampled_at > RSS_SAMPLE_SECONDS:
            self._rss, self._rss_sampled_at = server_rss_bytes(self.root_pid), now
        return self._rss

    # ---- management ------------------------------------------------------------------------------

    def load(self, name: str, url: str) -> Response:
        check_model_url(url)
        if self.registry.contains(name):
            raise ModelAlreadyLoadedError(f"model {name!r} is already loaded")
        started = time.perf_counter()
        loaded = load_model(url)

        def admit(estimate_total: int) -> None:
            # (The store in /dev/shm is bounded by its own size: when it fills, the add fails alike.)
            self.budget.admit(loaded.estimate_bytes, estimate_total, self.measured_rss())

        generation = self.registry.add(name, url, loaded.estimate_bytes, loaded.document, admit=admit)
        self.models.keep(name, loaded, generation)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "loaded model %s (customer %s) from %s in %.1f ms%s",
                clip(name),
                clip(loaded.predictor.customer),
                clip(url),
                (time.perf_counter() - started) * 1000,
                "" if loaded.compiled else " [Prophet fallback]",
            )
        return _json(200, {"status": f'Model "{clip(name)}" loaded'})

    def unload(self, name: str) -> Response:
        _, generation = self.registry.remove(name)
        self.models.drop(name)
        self.models.sync()
        lagging = self.registry.wait_for_acknowledgements(generation, DELETE_ACK_SECONDS, self.models.slot)
        if lagging:
            log.warning(
                "model %s unloaded, but workers %s did not confirm within %.0f s",
                name,
                lagging,
                DELETE_ACK_SECONDS,
            )
        log.info("unloaded model %s", name)
        return _json(200, {"status": f'Model "{name}" unloaded'})

    def describe(self, name: str) -> Response:
        entry = self.registry.read(name)
        if entry is None:
            raise ModelNotLoadedError(f"model {name!r} is not loaded")
        document = entry.document
        return _json(
            200,
            {
                "modelName": name,
                "modelUrl": entry.url,
                "status": "Healthy",
                "customer": document.get("customer"),
                "predictor": "compiled" if document.get("kind") == "compiled" else "prophet",
                "estimatedBytes": entry.estimate_bytes,
            },
        )

    def listing(self, limit_text: str | None, token_text: str | None) -> Response:
        # MMS's rules: limit defaults to 100 and is capped at 100; the token is an offset; bad numbers
        # fall back to the defaults; the token is present only while names remain past this page.
        limit = _int_or(limit_text, MAX_PAGE)
        if limit <= 0 and limit_text is not None:
            # An empty page with a token would send a client that follows tokens round forever.
            raise InvalidRequestError(
                f"limit must be between 1 and {MAX_PAGE}, got {clip(limit_text, 40)}", code="bad_limit"
            )
        limit = min(limit, MAX_PAGE)
        offset = max(0, _int_or(token_text, 0))
        page, more = self.registry.page(offset, limit)
        body: dict[str, Any] = {}
        if more:
            body["nextPageToken"] = str(offset + len(page))
        body["models"] = [{"modelName": name, "modelUrl": url} for name, url in page]
        return _json(200, body)

    # ---- inference -------------------------------------------------------------------------------

    def invoke(self, predictor_of: Any, check_target: Any = None) -> Response:
        try:
            predictor = predictor_of()  # 404 for an unknown model comes first, as in MMS
            if check_target is not None:
                check_target(predictor)
            forecast_request = parse_request(request.get_data(cache=False), request.content_type, self.limits)
            body = encode_response(predictor.forecast(forecast_request))
        except ServingError as exc:
            if http_status(exc) >= 500:
                log.warning("%d %s: %s", http_status(exc), exc.code, exc.message)
            return _error(exc)
        except Exception as exc:
            log.exception("forecast failed")
            return _error(internal_error(exc))
        return Response(body, status=200, mimetype=JSON_CONTENT_TYPE)

    def loaded_predictor(self, name: str) -> Predictor:
        predictor = self.models.get(name)
        if predictor is None:
            raise ModelNotLoadedError(f"model {clip(name, 100)!r} is not loaded; POST /models first")
        return predictor

    def invocations_predictor(self, model_name: str | None) -> Predictor:
        """/invocations: the /opt/ml/model model, or in multi-model mode `?model_name=` (as MMS does)."""
        if not self.multi_model:
            return self.single_predictor()
        if not model_name:
            raise InvalidRequestError(
                f"this server runs in multi-model mode ({MULTI_MODEL_ENV}=true): invoke a loaded model "
                "with POST /models/<name>/invoke, or POST /invocations?model_name=<name>",
                code="model_name_required",
            )
        return self.loaded_predictor(model_name)

    def single_predictor(self) -> Predictor:
        """The /opt/ml/model model, loaded once per worker (SageMaker single-model endpoints)."""
        if self.single_model is None and self.single_model_error is None:
            with self._single_lock:
                if self.single_model is None and self.single_model_error is None:
                    try:
                        self.single_model = load_model(sagemaker_paths().model_dir).predictor
                    except ServingError as exc:
                        # The endpoint's own model, not the caller's: the server is broken (a 500).
                        self.single_model_error = ServingError(exc.message, code=exc.code)
        if self.single_model_error is not None:
            raise self.single_model_error
        assert self.single_model is not None
        return self.single_model


def _int_or(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def create_app(server: LeanServer) -> Flask:
    app = Flask("fleetcast.lean")
    app.config["MAX_CONTENT_LENGTH"] = None  # protocol.parse_request gives the 413 in our format
    app.extensions["lean_server"] = server

    @app.get("/ping")
    def ping() -> Response:
        return _json(200, {"status": "Healthy"})

    @app.post("/models")
    def register() -> Response:
        fields: dict[str, Any] = dict(request.args)
        if request.get_data():
            try:
                body = json.loads(request.get_data())
            except (ValueError, RecursionError):
                raise InvalidRequestError(f"body must be JSON like {EXAMPLE_LOAD}") from None
            if not isinstance(body, dict):
                raise InvalidRequestError("body must be a JSON object with model_name and url")
            fields.update(body)
        name, url = fields.get("model_name"), fields.get("url")
        if not isinstance(name, str) or not name or not isinstance(url, str) or not url:
            raise InvalidRequestError(f"model_name and url are required, e.g. {EXAMPLE_LOAD}")
        try:
            return server.load(name, url)
        except ServingError as exc:
            log.warning("model %s not loaded: %d %s", clip(name), http_status(exc), clip(exc.message, 500))
            raise

    @app.get("/models")
    def list_models() -> Response:
        return server.listing(
            request.args.get("limit", request.args.get("max_results")), request.args.get("next_page_token")
        )

    @app.get("/models/<path:name>")
    def describe(name: str) -> Response:
        return server.describe(name)

    @app.delete("/models/<path:name>")
    def unregister(name: str) -> Response:
        return server.unload(name)

    def same_model(model_name: str | None) -> Any:
        """A TargetModel header must name this model: its archive (`<customer>.tar.gz`) or its name."""

        def check(predictor: Predictor) -> None:
            check_target_model(request.headers.get(TARGET_MODEL_HEADER), predictor.customer, model_name)

        return check

    @app.post("/models/<path:name>/invoke")
    def invoke(name: str) -> Response:
        # The platform's header names the archive this model was loaded from, so it always matches there.
        return server.invoke(lambda: server.loaded_predictor(name), same_model(name))

    @app.post("/invocations")
    def invocations() -> Response:
        model_name = request.args.get("model_name")
        return server.invoke(lambda: server.invocations_predictor(model_name), same_model(model_name))

    @app.after_request
    def name_the_worker(response: Response) -> Response:
        # Which worker process answered: lets tests and operators see requests spread over workers.
        response.headers[WORKER_HEADER] = str(os.getpid())
        return response

    @app.errorhandler(ServingError)
    def serving_error(exc: ServingError) -> Response:
        # The management views' errors (400 bad name, 404 unknown model, 409, 507 full or over budget).
        return _error(exc)

    @app.errorhandler(404)
    def not_found(exc: Exception) -> Response:
        return _error(RefusedError(404, f"no such resource: {request.method} {clip(request.path)}"))

    @app.errorhandler(405)
    def not_allowed(exc: Exception) -> Response:
        return _error(RefusedError(405, f"{request.method} is not allowed on {clip(request.path)}"))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        # Whatever werkzeug refuses (413 from a huge header, 400 from a broken request line): never HTML.
        return _error(RefusedError(exc.code or 400, exc.description or exc.name or "request refused"))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unexpected failure in %s %s", request.method, clip(request.path))
        error = internal_error(exc)
        error.message = clip(error.message, 500)
        return _error(error)

    return app
