"""Running the lean server under gunicorn: settings from the environment, worker hooks, start and stop."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import signal
from dataclasses import dataclass
from typing import Any

from flask import Flask

from fleetcast.serving.environment import Limits, ServingEnvironment
from fleetcast.serving.errors import ServingError
from fleetcast.serving.lean.app import LeanServer, create_app
from fleetcast.serving.lean.budget import MemoryBudget, budget_bytes
from fleetcast.serving.lean.registry import SharedRegistry, remove_stale_stores
from fleetcast.serving.lean.warm_up import rehearse, warm_up
from fleetcast.serving.lean.worker_cache import limit_malloc_arenas, release_memory
from fleetcast.serving.memory import rss_bytes
from fleetcast.serving.predictors import COMPILED_COPY_BYTES
from fleetcast.serving.protocol import JSON_CONTENT_TYPE, clip

log = logging.getLogger("fleetcast.serving.lean")

# Gunicorn stops workers gracefully within this, well inside the 30 s SageMaker allows before SIGKILL.
GRACEFUL_SECONDS = 10


@dataclass(frozen=True)
class LeanSettings:
    """How the lean server runs, from the serving environment (read once, in the master)."""

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
    def from_environment(cls, env: ServingEnvironment) -> LeanSettings:
        return cls(
            host=env.host,
            port=env.port,
            workers=env.workers or max(1, len(os.sched_getaffinity(0))),  # default: one per core
            threads=env.lean_threads,
            timeout=env.timeout_seconds,
            limits=env.limits,
            memory_budget_bytes=budget_bytes(env.memory_mb),
            multi_model=env.multi_model,
            cache_models=env.worker_cache_models,
            max_models=env.max_models,
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


def run_lean(environment: ServingEnvironment) -> int:
    """Run the lean server until SIGTERM/SIGINT (gunicorn's graceful stop); returns the exit code."""
    from gunicorn.app.base import BaseApplication

    settings = LeanSettings.from_environment(environment)
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
        except ServingError as exc:
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
