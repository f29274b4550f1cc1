"""Fixtures for the serving tests: a few small fitted models, fitted once per session."""

from __future__ import annotations

import pytest

from tests.serving.models import BuiltModel, serving_models


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BuiltModel]:
    """daily (with intervals), no_intervals (uncertainty_samples=0), hourly."""
    return serving_models(tmp_path_factory.mktemp("serving-models"))
