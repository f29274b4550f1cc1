"""The lean multi-model server: the SageMaker MME container API in one Flask app under gunicorn.

No Java and no process per model: a loaded model is a few kilobytes of compiled numbers (see
lean_models.py), so one worker process holds thousands. Endpoints (same request, response and error
format as the MMS handler; errors are `{"error": code, "message": ...}`):

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

import contextlib
import ctypes
import gc
import json
import logging
import os
import signal
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from fleetcast.paths import sagemaker_paths
from fleetcast.serving.budget import MemoryBudget, OverBudget, budget_bytes, rss_bytes, server_rss_bytes
from fleetcast.serving.lean_models import (
    COMPILED_COPY_BYTES,
    LoadedModel,
    Predictor,
    from_document,
    load_model,
    rehearse,
    warm_up,
)
from fleetcast.serving.protocol import (
    JSON_CONTENT_TYPE,
    TARGET_MODEL_HEADER,
    ForecastError,
    Limits,
    check_model_url,
    check_target_model,
    clip,
    encode_response,
    internal_error,
    parse_request,
)
from fleetcast.serving.registry import RegistryError, SharedRegistry, remove_stale_stores

log = logging.getLogger("fleetcast.serving.lean")

PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
BIND_HOST_ENV = "FLEETCAST_BIND_HOST"
WORKERS_ENV = "SAGEMAKER_MODEL_SERVER_WORKERS"
THREADS_ENV = "FLEETCAST_LEAN_THREADS"
TIMEOUT_ENV = "SAGEMAKER_MODEL_SERVER_TIMEOUT"
MULTI_MODEL_ENV = "SAGEMAKER_MULTI_MODEL"
DEFAULT_HOST = "0.0.0.0"  # SageMaker reaches the container from outside it
DEFAULT_PORT = 8080
DEFAULT_THREADS = 4
WORKER_HEADER = "X-Fleetcast-Worker"
EXAMPLE_LOAD = '{"model_name": "m1", "url": "/opt/ml/models/m1/model"}'
# MMS's list API: at most 100 per page, `limit` and `next_page_token` (an offset) as query parameters.
MAX_PAGE = 100
# Gunicorn stops workers gracefully within this, well inside the 30 s SageMaker allows before SIGKILL.
GRACEFUL_SECONDS = 10
# How often an idle worker checks for unloaded models, and how long DELETE waits for the others.
WATCH_SECONDS = 0.01
DELETE_ACK_SECONDS = 5.0
# Unloads come in bursts (the platform evicts many models under pressure): trim once the burst is over.
TRIM_AFTER_SECONDS = 0.2
# Built predictors each worker keeps (LRU); the rest are rebuilt from the registry on use (~0.1 ms).
WORKER_CACHE_ENV = "FLEETCAST_WORKER_CACHE_MODELS"
DEFAULT_WORKER_CACHE_MODELS = 20_000
MAX_MODELS_ENV = "FLEETCAST_MAX_MODELS"
M_ARENA_MAX = -8  # glibc mallopt parameter
MALLOC_ARENAS = 2


def _libc() -> Any:
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:  # not glibc: nothing to tune
        return None


LIBC = _libc()


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """Few malloc arenas: glibc gives each thread its own, and freed model memory then stays scattered
    over them instead of going back to the OS. Set in the master, inherited by every worker."""
    if LIBC is not None and hasattr(LIBC, "mallopt"):
        LIBC.mallopt(M_ARENA_MAX, arenas)


def release_memory() -> None:
    """After unloads: collect cycles and hand freed heap pages back to the OS (DELETE frees for real)."""
    gc.collect()
    if LIBC is not None and hasattr(LIBC, "malloc_trim"):
        LIBC.malloc_trim(0)


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body), status=status, mimetype=JSON_CONTENT_TYPE)


def _error(status: int, code: str, message: str) -> Response:
    return _json(status, {"error": code, "message": message})


class WorkerModels:
    """This process's copies of the loaded models: a bounded LRU cache kept in step with the registry.

    A copy is built from the registry's compiled document on first use (~0.1 ms); at most `capacity`
    copies stay (FLEETCAST_WORKER_CACHE_MODELS), so a worker's memory does not grow with the number of
    loaded models, only the shared store does.
    """

    def __init__(self, registry: SharedRegistry, capacity: int = DEFAULT_WORKER_CACHE_MODELS) -> None:
        self.registry = registry
        self.capacity = capacity
        self.local: OrderedDict[str, Predictor] = OrderedDict()  # least recently used first
        self.seen_generation = registry.generation
        self.slot: int | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._dropped_at: float | None = None

    def sync(self) -> None:
        """Drop the copies of models unloaded since the last sync (only those changes are read)."""
        generation = self.registry.generation
        if generation == self.seen_generation:
            return
        with self._lock:
            generation = self.registry.generation
            gone = self.registry.removed_since(self.seen_generation)
            dropped = [name for name in gone if self.local.pop(name, None) is not None]
            self.seen_generation = max(self.seen_generation, generation)
        if dropped:
            self._dropped_at = time.monotonic()
        if self.slot is not None:
            self.registry.acknowledge(self.slot, generation)

    def get(self, name: str) -> Predictor | None:
        self.sync()
        with self._lock:
            predictor = self.local.get(name)
            if predictor is not None:
                self.local.move_to_end(name)
                return predictor
        generation = self.registry.generation
        entry = self.registry.read(name)
        if entry is None:
            return None
        predictor = from_document(entry.document)
        self._remember(name, predictor, generation)
        return predictor

    def keep(self, name: str, loaded: LoadedModel, generation: int) -> None:
        self._remember(name, loaded.predictor, generation)

    def _remember(self, name: str, predictor: Predictor, generation: int) -> None:
        with self._lock:
            # Cache it only if nothing changed since it was read: a DELETE may have raced us, and this
            # worker could already have acknowledged it.
            if self.registry.generation != generation or self.capacity == 0:
                return
            self.local[name] = predictor
            self.local.move_to_end(name)
            while len(self.local) > self.capacity:
                self.local.popitem(last=False)

    def drop(self, name: str) -> None:
        with self._lock:
            self.local.pop(name, None)
        self._dropped_at = time.monotonic()

    def start_watching(self) -> None:
        """In a worker: claim an acknowledgement slot and drop unloaded models even when idle."""
        self.slot = self.registry.claim_slot()
        with self._lock:
            self.local.clear()  # a fresh worker: nothing to reconcile, only changes from here on
            self.seen_generation = self.registry.generation
        self.registry.acknowledge(self.slot, self.seen_generation)
        threading.Thread(target=self._watch, name="model-registry-watch", daemon=True).start()

    def stop_watching(self) -> None:
        self._stop.set()
        if self.slot is not None:
            self.registry.release_slot(self.slot)
            self.slot = None

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_SECONDS):
            try:
                self.sync()
                dropped_at = self._dropped_at
                if dropped_at is not None and time.monotonic() - dropped_at > TRIM_AFTER_SECONDS:
                    self._dropped_at = None
                    release_memory()
            except Exception:  # the watcher must outlive a transient filesystem hiccup
                log.exception("model registry watch failed")
                time.sleep(1)


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
        self.single_model_error: ForecastError | None = None
        self.multi_model = True  # SAGEMAKER_MULTI_MODEL: which model /invocations serves
        self._single_lock = threading.Lock()

    # ---- management ------------------------------------------------------------------------------

    def load(self, name: str, url: str) -> Response:
        check_model_url(url)
        if self.registry.contains(name):
            return _error(409, "model_already_loaded", f"model {name!r} is already loaded")
        started = time.perf_counter()
        loaded = load_model(url)

        def admit(estimate_total: int) -> None:
            # (The store in /dev/shm is bounded by its own size: when it fills, the add is a 507 too.)
            self.budget.admit(loaded.estimate_bytes, estimate_total, server_rss_bytes(self.root_pid))

        try:
            generation = self.registry.add(name, url, loaded.estimate_bytes, loaded.document, admit=admit)
        except OverBudget as exc:
            log.warning("model %s not loaded: %s", clip(name), exc)
            return _error(507, "insufficient_memory", str(exc))
        self.models.keep(name, loaded, generation)
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
            return _error(404, "model_not_found", f"model {name!r} is not loaded")
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
            return _error(
                400, "bad_limit", f"limit must be between 1 and {MAX_PAGE}, got {clip(limit_text, 40)}"
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
        except ForecastError as exc:
            if exc.status >= 500:
                log.warning("%d %s: %s", exc.status, exc.code, exc.message)
            return _error(exc.status, exc.code, exc.message)
        except Exception as exc:
            log.exception("forecast failed")
            error = internal_error(exc)
            return _error(error.status, error.code, error.message)
        return Response(body, status=200, mimetype=JSON_CONTENT_TYPE)

    def loaded_predictor(self, name: str) -> Predictor:
        predictor = self.models.get(name)
        if predictor is None:
            raise ForecastError(
                404, "model_not_found", f"model {clip(name, 100)!r} is not loaded; POST /models first"
            )
        return predictor

    def invocations_predictor(self, model_name: str | None) -> Predictor:
        """/invocations: the /opt/ml/model model, or in multi-model mode `?model_name=` (as MMS does)."""
        if not self.multi_model:
            return self.single_predictor()
        if not model_name:
            raise ForecastError(
                400,
                "model_name_required",
                "this server runs in multi-model mode (SAGEMAKER_MULTI_MODEL=true): invoke a loaded model "
                "with POST /models/<name>/invoke, or POST /invocations?model_name=<name>",
            )
        return self.loaded_predictor(model_name)

    def single_predictor(self) -> Predictor:
        """The /opt/ml/model model, loaded once per worker (SageMaker single-model endpoints)."""
        if self.single_model is None and self.single_model_error is None:
            with self._single_lock:
                if self.single_model is None and self.single_model_error is None:
                    try:
                        self.single_model = load_model(sagemaker_paths().model_dir).predictor
                    except ForecastError as exc:
                        self.single_model_error = ForecastError(500, exc.code, exc.message)
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
                return _error(
                    400,
                    "bad_request",
                    f"body must be JSON like {EXAMPLE_LOAD}",
                )
            if not isinstance(body, dict):
                return _error(400, "bad_request", "body must be a JSON object with model_name and url")
            fields.update(body)
        name, url = fields.get("model_name"), fields.get("url")
        if not isinstance(name, str) or not name or not isinstance(url, str) or not url:
            return _error(
                400,
                "bad_request",
                f"model_name and url are required, e.g. {EXAMPLE_LOAD}",
            )
        try:
            return server.load(name, url)
        except (ForecastError, RegistryError) as exc:
            log.warning("model %s not loaded: %d %s", clip(name), exc.status, clip(exc.message, 500))
            return _error(exc.status, exc.code, exc.message)

    @app.get("/models")
    def list_models() -> Response:
        return server.listing(
            request.args.get("limit", request.args.get("max_results")), request.args.get("next_page_token")
        )

    @app.get("/models/<path:name>")
    def describe(name: str) -> Response:
        try:
            return server.describe(name)
        except RegistryError as exc:
            return _error(exc.status, exc.code, exc.message)

    @app.delete("/models/<path:name>")
    def unregister(name: str) -> Response:
        try:
            return server.unload(name)
        except RegistryError as exc:
            return _error(exc.status, exc.code, exc.message)

    @app.post("/models/<path:name>/invoke")
    def invoke(name: str) -> Response:
        return server.invoke(lambda: server.loaded_predictor(name))

    @app.post("/invocations")
    def invocations() -> Response:
        model_name = request.args.get("model_name")

        def same_model(predictor: Predictor) -> None:
            check_target_model(request.headers.get(TARGET_MODEL_HEADER), predictor.customer, model_name)

        return server.invoke(lambda: server.invocations_predictor(model_name), same_model)

    @app.after_request
    def name_the_worker(response: Response) -> Response:
        # Which worker process answered: lets tests and operators see requests spread over workers.
        response.headers[WORKER_HEADER] = str(os.getpid())
        return response

    @app.errorhandler(404)
    def not_found(exc: Exception) -> Response:
        return _error(404, "not_found", f"no such resource: {request.method} {clip(request.path)}")

    @app.errorhandler(405)
    def not_allowed(exc: Exception) -> Response:
        return _error(405, "method_not_allowed", f"{request.method} is not allowed on {clip(request.path)}")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        # Whatever werkzeug refuses (413 from a huge header, 400 from a broken request line): never HTML.
        code = (exc.name or "error").lower().replace(" ", "_")
        return _error(exc.code or 500, code, exc.description or exc.name or "request refused")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unexpected failure in %s %s", request.method, clip(request.path))
        error = internal_error(exc)
        return _error(error.status, error.code, clip(error.message, 500))

    return app


# ---- running it under gunicorn -----------------------------------------------------------------------


def worker_count(environ: dict[str, str] | os._Environ[str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    text = (environ.get(WORKERS_ENV) or "").strip()
    if not text:
        return max(1, len(os.sched_getaffinity(0)))
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{WORKERS_ENV}={text!r} must be a positive integer")
    return int(text)


def _positive_env(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{name}={text!r} must be a positive integer")
    return int(text)


@dataclass(frozen=True)
class LeanSettings:
    host: str
    port: int
    workers: int
    threads: int
    timeout: int
    limits: Limits
    memory_budget_bytes: int
    multi_model: bool
    cache_models: int
    max_models: int | None

    @classmethod
    def from_env(cls, host: str | None, port: int | None) -> LeanSettings:
        """Everything the environment configures; ValueError names a bad variable."""
        port_text = str(port) if port is not None else os.environ.get(PORT_ENV, str(DEFAULT_PORT))
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{PORT_ENV}={port_text!r} is not a TCP port")
        return cls(
            host=host or os.environ.get(BIND_HOST_ENV) or DEFAULT_HOST,
            port=int(port_text),
            workers=worker_count(),
            threads=_positive_env(THREADS_ENV, DEFAULT_THREADS),
            timeout=_positive_env(TIMEOUT_ENV, 60),
            limits=Limits.from_env(),
            memory_budget_bytes=budget_bytes(),
            multi_model=os.environ.get(MULTI_MODEL_ENV, "true").strip().lower() == "true",
            cache_models=_positive_env(WORKER_CACHE_ENV, DEFAULT_WORKER_CACHE_MODELS),
            max_models=_positive_env(MAX_MODELS_ENV, 0) or None,
        )


def _write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's refusals of requests it cannot parse (414, 431, 400), in our JSON error format."""
    from gunicorn import util

    code = reason.lower().replace(" ", "_") or "bad_request"
    body = json.dumps({"error": code, "message": clip(mesg or reason, 300)}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: {JSON_CONTENT_TYPE}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin1") + body)


def answer_parse_errors_in_json() -> None:
    """Make gunicorn's own error pages JSON (it writes them through util.write_error, HTML by default)."""
    from gunicorn import util

    util.write_error = _write_json_error


def _gunicorn_options(settings: LeanSettings, server: LeanServer) -> dict[str, Any]:
    def post_fork(arbiter: Any, worker: Any) -> None:
        server.models.start_watching()
        if server.warm_model is not None:
            # A fresh worker has not yet touched the shared code and data it will run: do it now, so
            # its memory is settled before it serves (and "empty server" RSS means what it says).
            with contextlib.suppress(Exception):
                rehearse(server.warm_model)
            release_memory()

    def worker_exit(arbiter: Any, worker: Any) -> None:
        server.models.stop_watching()

    def when_ready(arbiter: Any) -> None:
        log.info(
            "lean server ready on %s:%d: %d worker(s) x %d threads, memory budget %.0f MB, %s mode",
            settings.host,
            settings.port,
            settings.workers,
            settings.threads,
            settings.memory_budget_bytes / (1024 * 1024),
            "multi-model" if settings.multi_model else "single-model",
        )

    options = {
        "bind": f"{settings.host}:{settings.port}",
        "workers": settings.workers,
        "worker_class": "gthread",
        "threads": settings.threads,
        "timeout": settings.timeout,
        "graceful_timeout": GRACEFUL_SECONDS,
        "keepalive": 75,  # longer than the platform's idle time, so its connections are reused
        "preload_app": True,  # Prophet is imported once, before the fork, and shared copy-on-write
        "accesslog": None,
        "loglevel": "warning",
        "post_fork": post_fork,
        "worker_exit": worker_exit,
        "when_ready": when_ready,
        "proc_name": "fleetcast-lean",
    }
    if os.access("/dev/shm", os.W_OK):
        options["worker_tmp_dir"] = "/dev/shm"  # worker heartbeats never touch a slow disk
    return options


def run_lean(host: str | None = None, port: int | None = None) -> int:
    """Run the lean server until SIGTERM/SIGINT (gunicorn's graceful stop); returns the exit code."""
    from gunicorn.app.base import BaseApplication

    try:
        settings = LeanSettings.from_env(host, port)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    limit_malloc_arenas()
    answer_parse_errors_in_json()
    for stale in remove_stale_stores():
        log.info("removed %s, left by a server that was killed", stale)
    registry = SharedRegistry(max_models=settings.max_models)
    server_warm_model = warm_up(registry.directory / ".warm-up")
    # Workers share the parent's objects copy-on-write; frozen, the collector never writes to them.
    gc.collect()
    gc.freeze()
    # The empty server's size: the master now, and each worker a forked copy of it.
    budget = MemoryBudget(
        limit_bytes=settings.memory_budget_bytes,
        baseline_bytes=rss_bytes(os.getpid()) * (settings.workers + 1),
        workers=settings.workers,
        cached_bytes_cap=settings.cache_models * COMPILED_COPY_BYTES,
    )
    server = LeanServer(registry, settings.workers, budget, settings.limits, settings.cache_models)
    server.warm_model = server_warm_model
    server.multi_model = settings.multi_model
    if not settings.multi_model:
        try:
            server.single_predictor()
        except ForecastError as exc:
            log.error("single-model mode: %s", exc.message)
            registry.close()
            return 1
    app = create_app(server)
    options = _gunicorn_options(settings, server)

    class LeanApplication(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Flask:
            return app

    log.info(
        "starting the lean server (gunicorn, %d worker(s)), model registry in %s (SIGTERM stops it)",
        settings.workers,
        registry.directory,
    )
    try:
        LeanApplication().run()
    except SystemExit as exc:  # gunicorn's arbiter leaves through sys.exit, also on a clean stop
        code = exc.code if isinstance(exc.code, int) else 1
    else:
        code = 0
    finally:
        registry.close()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if code:
        log.error("the lean server exited with status %s", code)
    else:
        log.info("lean server stopped")
    return code
