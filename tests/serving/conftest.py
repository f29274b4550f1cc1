"""Fixtures for the serving tests: a few small fitted models, fitted once per session, and a server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleetcast.serving.environment import MULTI_MODEL_ENV
from tests.helpers import require_java
from tests.serving.models import BuiltModel, serving_models
from tests.support.servers import Server, start_server


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BuiltModel]:
    """daily (with intervals), no_intervals (uncertainty_samples=0), hourly."""
    return serving_models(tmp_path_factory.mktemp("serving-models"))


@pytest.fixture(scope="module", params=[pytest.param("mms", marks=pytest.mark.mms), "lean"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Each server in multi-model mode, empty, for a test module (a module may define its own `server`)."""
    if request.param == "mms":
        require_java()
    root = tmp_path_factory.mktemp(f"server-{request.param}")
    with start_server(request.param, root, {MULTI_MODEL_ENV: "true"}) as running:
        yield running
