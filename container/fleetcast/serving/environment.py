"""How SageMaker tells a serving container which contract it serves, read in one place for both servers.

SageMaker sets `SAGEMAKER_MULTI_MODEL=true` for a multi-model endpoint (the container's `Mode: MultiModel`).
Anything else, unset included, is a single-model endpoint serving `/opt/ml/model` on `/invocations`, as
sagemaker-inference reads it (SDK local mode's `Model.deploy` sets nothing).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

MULTI_MODEL_ENV = "SAGEMAKER_MULTI_MODEL"


def multi_model_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(MULTI_MODEL_ENV, "false").strip().lower() == "true"
