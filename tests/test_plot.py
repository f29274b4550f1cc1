"""`fleetcast plot` from a model archive, with and without intervals."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from fleetcast.cli import main
from fleetcast.model.settings import ProphetSettings
from tests.serving.models import archive_model, daily_history


@pytest.mark.parametrize("samples", [1000, 0], ids=["intervals", "no-intervals"])
def test_plot_draws_a_model_with_or_without_intervals(tmp_path: Path, samples: int):
    settings = replace(ProphetSettings(), uncertainty_samples=samples)
    archive_model(tmp_path / "models", "8", daily_history(8), settings)
    out = tmp_path / "plot.png"
    args = ["plot", "--models", str(tmp_path / "models"), "--customer", "8", "--period", "14"]
    assert main([*args, "--out", str(out)]) == 0
    with Image.open(out) as image:
        assert image.size == (1000, 450)
