"""`fleetcast serve`: the image's inference entry point (what SageMaker runs as `docker run IMAGE serve`).

FLEETCAST_SERVER chooses the server: `lean` (the default; fleetcast.serving.lean) or `mms` (Multi Model
Server, the reference; fleetcast.serving.mms).
"""

from __future__ import annotations

import logging
import os

from fleetcast.serving.mms.supervisor import ServeError, run_mms

log = logging.getLogger(__name__)

SERVER_ENV = "FLEETCAST_SERVER"
DEFAULT_SERVER = "lean"


def serve_main(host: str | None = None, port: int | None = None) -> int:
    """Run the server chosen by FLEETCAST_SERVER until SIGTERM; returns the process exit code."""
    # The lean server is the default (it passes the same MME contract suite and beats MMS on every
    # measured number: bench/serving_compare.py); FLEETCAST_SERVER=mms brings Multi Model Server back.
    choice = os.environ.get(SERVER_ENV, DEFAULT_SERVER).strip().lower() or DEFAULT_SERVER
    try:
        if choice == "lean":
            from fleetcast.serving.lean.runner import run_lean

            return run_lean(host=host, port=port)
        if choice != "mms":
            raise ServeError(f"{SERVER_ENV}={choice!r} is not a server; choose mms or lean")
        return run_mms(host=host, port=port)
    except ServeError as exc:
        log.error("%s", exc)
        return 2
