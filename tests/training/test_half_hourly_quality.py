"""Half-hourly demand (fleetcast.data.demand): the simulator, and what `train` ships for it.

bench/quality.py measures the targets on 12-week series over several seeds; this runs the same
measurement on two series.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.quality import PROPHET_TARGET, measure
from fleetcast.data.demand import STEPS_PER_DAY, half_hourly_demand


def test_the_simulator_gives_whole_weeks_of_day_type_load_shapes():
    ds, y = half_hourly_demand(weeks=3, seed=4)
    assert len(ds) == len(y) == 3 * 7 * STEPS_PER_DAY
    assert pd.Timestamp(ds[0]).day_of_week == 0 and np.all(np.diff(ds) == np.timedelta64(30, "m"))
    again = half_hourly_demand(weeks=3, seed=4)
    assert np.array_equal(again[0], ds) and np.array_equal(again[1], y)
    days = y.reshape(21, STEPS_PER_DAY)
    working, sunday = days[[0, 1, 2, 3, 4]].mean(axis=0), days[6]
    assert working.max() > 1.15 * sunday.max()  # weekends draw less
    assert np.argmax(np.diff(working)) < np.argmax(np.diff(sunday))  # and ramp up later
    assert days[:, :8].mean() < 0.8 * days[:, 20:36].mean()  # nights are low


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_prophet_with_day_types_comes_within_the_target_and_train_ships_the_better(tmp_path: Path, seed: int):
    ds, y = half_hourly_demand(weeks=12, seed=seed)
    quality = measure(ds, y, tmp_path)
    best, ratio = quality.best_prophet
    assert best == "daily-by-day-type"
    assert ratio <= PROPHET_TARGET, quality
    assert quality.candidates[best] < 0.75 * quality.candidates["configured"]  # today's model, before
    assert quality.shipped in ("naive", best) or quality.shipped.startswith(f"blend ({best}, ")
    assert quality.shipped_ratio <= max(1.0, ratio) + 1e-5  # (metadata.json rounds to 6 decimals)
