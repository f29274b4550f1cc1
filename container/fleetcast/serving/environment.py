"""What SageMaker tells a serving container through its environment, spelled once for both servers.

SageMaker sets `SAGEMAKER_MULTI_MODEL=true` for a multi-model endpoint (the container's `Mode: MultiModel`).
Anything else, unset included, is a single-model endpoint serving `/opt/ml/model` on `/invocations`, as
sagemaker-inference reads it (SDK local mode's `Model.deploy` sets nothing).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

MULTI_MODEL_ENV = "SAGEMAKER_MULTI_MODEL"
PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
WORKERS_ENV = "SAGEMAKER_MODEL_SERVER_WORKERS"
BIND_HOST_ENV = "FLEETCAST_BIND_HOST"  # ours: tests and local scripts bind to loopback
DEFAULT_HOST = "0.0.0.0"  # SageMaker reaches the container from outside it
DEFAULT_PORT = 8080


def multi_model_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(MULTI_MODEL_ENV, "false").strip().lower() == "true"
