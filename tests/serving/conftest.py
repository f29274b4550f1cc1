"""Fixtures for the serving tests: a few small fitted models, fitted once per session."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fleetcast.model.settings import ProphetSettings
from tests.serving.models import BuiltModel, build_model, daily_history, hourly_history


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BuiltModel]:
    """daily (with intervals), no_intervals (uncertainty_samples=0), hourly."""
    root = tmp_path_factory.mktemp("serving-models")
    return {
        "daily": build_model(root, "7", daily_history(7)),
        "no_intervals": build_model(
            root, "8", daily_history(8), replace(ProphetSettings(), uncertainty_samples=0)
        ),
        "hourly": build_model(root, "9", hourly_history()),
    }
