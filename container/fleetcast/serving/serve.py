"""`fleetcast serve`: the image's inference entry point (what SageMaker runs as `docker run IMAGE serve`).

FLEETCAST_SERVER chooses the server: `lean` (the default; fleetcast.serving.lean) or `mms` (Multi Model
Server, the reference; fleetcast.serving.mms).
"""

from __future__ import annotations

import logging

from fleetcast.serving.environment import ServingEnvironment
from fleetcast.serving.mms.supervisor import ServeError, run_mms

log = logging.getLogger(__name__)


def serve_main(host: str | None = None, port: int | None = None) -> int:
    """Run the server chosen by FLEETCAST_SERVER until SIGTERM; returns the process exit code."""
    # The lean server is the default (it passes the same MME contract suite and beats MMS on every
    # measured number: bench/serving_compare.py); FLEETCAST_SERVER=mms brings Multi Model Server back.
    try:
        settings = ServingEnvironment.read(host=host, port=port)  # the one read of the environment
    except ValueError as exc:  # a bad setting fails at start-up, not on every request
        log.error("%s", exc)
        return 2
    try:
        if settings.server == "lean":
            from fleetcast.serving.lean.runner import run_lean

            return run_lean(settings)
        return run_mms(settings)
    except ServeError as exc:
        log.error("%s", exc)
        return 2
