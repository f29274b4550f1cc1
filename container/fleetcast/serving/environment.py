"""Every serving setting the environment gives, read once (as sagemaker-inference's environment.py does).

`ServingEnvironment.read()` is the only reader of these variables; the servers, the MMS handler and the
tests take their values from it. A malformed value is a ValueError naming the variable, raised at
start-up rather than on every request.

SageMaker's (and sagemaker-inference's) names:
- `SAGEMAKER_MULTI_MODEL`: `true` for a multi-model endpoint (the container's `Mode: MultiModel`).
  Anything else, unset included, is a single-model endpoint serving `/opt/ml/model` on `/invocations`,
  as sagemaker-inference reads it (SDK local mode's `Model.deploy` sets nothing);
- `SAGEMAKER_BIND_TO_PORT` (8080), `SAGEMAKER_MODEL_SERVER_WORKERS` (lean: one per core; MMS: workers
  per model, 1), `SAGEMAKER_MODEL_SERVER_TIMEOUT` (60 s), `SAGEMAKER_MAX_PAYLOAD_IN_MB` (6),
  `SAGEMAKER_MODEL_SERVER_VMARGS` (MMS's JVM arguments).

Ours:
- `FLEETCAST_SERVER`: `lean` (default) or `mms`; `FLEETCAST_BIND_HOST` (0.0.0.0; tests bind loopback);
- `FLEETCAST_MAX_PERIOD` (366): the longest forecast a request may ask for;
- lean: `FLEETCAST_MEMORY_MB` (the memory budget; default half the container's memory),
  `FLEETCAST_LEAN_THREADS` (4 per worker), `FLEETCAST_WORKER_CACHE_MODELS` (20,000 built predictors per
  worker), `FLEETCAST_MAX_MODELS` (no cap);
- MMS: `FLEETCAST_MIN_FREE_MB` (256; memory kept free, 0 turns the check off).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

MULTI_MODEL_ENV = "SAGEMAKER_MULTI_MODEL"
PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
WORKERS_ENV = "SAGEMAKER_MODEL_SERVER_WORKERS"
TIMEOUT_ENV = "SAGEMAKER_MODEL_SERVER_TIMEOUT"
MAX_PAYLOAD_ENV = "SAGEMAKER_MAX_PAYLOAD_IN_MB"
VMARGS_ENV = "SAGEMAKER_MODEL_SERVER_VMARGS"
SERVER_ENV = "FLEETCAST_SERVER"
BIND_HOST_ENV = "FLEETCAST_BIND_HOST"  # ours: tests and local scripts bind to loopback
MAX_PERIOD_ENV = "FLEETCAST_MAX_PERIOD"
MEMORY_ENV = "FLEETCAST_MEMORY_MB"
THREADS_ENV = "FLEETCAST_LEAN_THREADS"
WORKER_CACHE_ENV = "FLEETCAST_WORKER_CACHE_MODELS"
MAX_MODELS_ENV = "FLEETCAST_MAX_MODELS"
MIN_FREE_ENV = "FLEETCAST_MIN_FREE_MB"
# Every variable ServingEnvironment reads (a harness that must start from a clean slate clears these).
SETTING_NAMES = (
    MULTI_MODEL_ENV,
    PORT_ENV,
    WORKERS_ENV,
    TIMEOUT_ENV,
    MAX_PAYLOAD_ENV,
    VMARGS_ENV,
    SERVER_ENV,
    BIND_HOST_ENV,
    MAX_PERIOD_ENV,
    MEMORY_ENV,
    THREADS_ENV,
    WORKER_CACHE_ENV,
    MAX_MODELS_ENV,
    MIN_FREE_ENV,
)

SERVERS = ("lean", "mms")
DEFAULT_SERVER = "lean"
DEFAULT_HOST = "0.0.0.0"  # SageMaker reaches the container from outside it
DEFAULT_PORT = 8080
DEFAULT_TIMEOUT_SECONDS = 60
DEFAULT_THREADS = 4
# Built predictors each lean worker keeps (LRU); the rest are rebuilt from the registry on use.
DEFAULT_WORKER_CACHE_MODELS = 20_000
# An MMS model costs ~140 MB (its own worker process); keep room for one more plus some slack.
DEFAULT_MIN_FREE_MB = 256
DEFAULT_MAX_PERIOD = 366
# SageMaker real-time endpoints cap request payloads at 6 MB.
DEFAULT_MAX_PAYLOAD_MB = 6
MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What a request may ask for: the longest forecast and the largest body."""

    max_period: int = DEFAULT_MAX_PERIOD
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_MB * MB


@dataclass(frozen=True)
class ServingEnvironment:
    server: str = DEFAULT_SERVER
    multi_model: bool = False
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    workers: int | None = None  # None: the server's own default
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    limits: Limits = Limits()
    memory_mb: float | None = None  # None: half the container's memory
    lean_threads: int = DEFAULT_THREADS
    worker_cache_models: int = DEFAULT_WORKER_CACHE_MODELS
    max_models: int | None = None
    min_free_bytes: int = DEFAULT_MIN_FREE_MB * MB
    vmargs: str | None = None

    @classmethod
    def read(
        cls, environ: Mapping[str, str] | None = None, *, host: str | None = None, port: int | None = None
    ) -> ServingEnvironment:
        """The settings in `environ` (default: this process's); `host`/`port` are command-line overrides."""
        env = os.environ if environ is None else environ
        server = env.get(SERVER_ENV, "").strip().lower() or DEFAULT_SERVER
        if server not in SERVERS:
            raise ValueError(f"{SERVER_ENV}={server!r} is not a server; choose {' or '.join(SERVERS)}")
        port_text = str(port) if port is not None else (env.get(PORT_ENV, "").strip() or str(DEFAULT_PORT))
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{PORT_ENV}={port_text!r} is not a TCP port")
        memory_text = env.get(MEMORY_ENV, "").strip()
        min_free_text = env.get(MIN_FREE_ENV, "").strip()
        if min_free_text and not min_free_text.isdigit():
            raise ValueError(
                f"{MIN_FREE_ENV}={min_free_text!r} must be a whole number of MB (0 turns the check off)"
            )
        return cls(
            server=server,
            multi_model=env.get(MULTI_MODEL_ENV, "false").strip().lower() == "true",
            host=host or env.get(BIND_HOST_ENV, "").strip() or DEFAULT_HOST,
            port=int(port_text),
            workers=_positive_int(env, WORKERS_ENV),
            timeout_seconds=_positive_int(env, TIMEOUT_ENV) or DEFAULT_TIMEOUT_SECONDS,
            limits=Limits(
                max_period=_positive_int(env, MAX_PERIOD_ENV) or DEFAULT_MAX_PERIOD,
                max_payload_bytes=(_positive_int(env, MAX_PAYLOAD_ENV) or DEFAULT_MAX_PAYLOAD_MB) * MB,
            ),
            memory_mb=_positive_number(memory_text, MEMORY_ENV) if memory_text else None,
            lean_threads=_positive_int(env, THREADS_ENV) or DEFAULT_THREADS,
            worker_cache_models=_positive_int(env, WORKER_CACHE_ENV) or DEFAULT_WORKER_CACHE_MODELS,
            max_models=_positive_int(env, MAX_MODELS_ENV),
            min_free_bytes=(int(min_free_text) if min_free_text else DEFAULT_MIN_FREE_MB) * MB,
            vmargs=env.get(VMARGS_ENV, "").strip() or None,
        )


def _positive_int(env: Mapping[str, str], name: str) -> int | None:
    """The variable's positive integer, or None when it is unset or blank."""
    text = env.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        # A misconfigured server should say so at start-up, not answer every request with a 500.
        raise ValueError(f"{name}={text!r} must be a positive integer")
    return int(text)


def _positive_number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ValueError(f"{name}={text!r} must be a positive number of megabytes")
    return value
