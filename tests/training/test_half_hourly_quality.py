"""Half-hourly demand (fleetcast.data.demand): the simulator, and what `train` ships for it.

bench/quality.py measures the targets on 12-week series over several seeds; this runs the same
measurement on two series.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.quality import PROPHET_TARGET, measure, seed_list
from fleetcast.data import demand
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
    holdout = 7 * STEPS_PER_DAY
    quality = measure(ds, y, tmp_path, expected=demand.expected_demand(12, seed, len(y) - holdout))
    best, ratio = quality.best_prophet
    assert best == "daily-by-day-type"
    assert ratio <= PROPHET_TARGET, quality
    assert quality.candidates[best] < 0.75 * quality.candidates["configured"]  # today's model, before
    assert quality.shipped in ("naive", best) or quality.shipped.startswith(f"blend ({best}, ")
    assert quality.shipped_ratio <= max(1.0, ratio) + 1e-5  # (metadata.json rounds to 6 decimals)
    # The simulator's conditional mean, scored on the same holdout, beats naive on these weeks too.
    assert 0.5 < quality.expected_ratio < 1


def test_the_quality_bench_reads_seed_ranges():
    assert seed_list("0-4,9") == [0, 1, 2, 3, 4, 9]
    assert seed_list("7") == [7]


@pytest.mark.parametrize("seed, origin", [(0, 11 * 7 * STEPS_PER_DAY), (3, 5 * 7 * STEPS_PER_DAY + 17)])
def test_expected_demand_is_the_mean_of_the_simulator_continued_from_its_state(seed: int, origin: int):
    process = demand._simulate(12, seed, demand.START)
    expected = demand.expected_demand(12, seed, origin)
    assert expected.shape == process.values[origin:].shape

    # Continue the simulator from its state at origin - 1 along many fresh random paths, and average.
    rng = np.random.default_rng(99)
    paths, steps = 4000, len(expected)
    last_day = process.day[origin - 1]
    days_on = process.day[origin:] - last_day
    anomaly = np.tile(process.anomaly[last_day], (paths, 1))
    anomalies = np.empty((paths, days_on.max() + 1))
    anomalies[:, 0] = process.anomaly[last_day]
    for k in range(1, days_on.max() + 1):
        anomaly = demand.ANOMALY_PERSISTENCE * anomaly + rng.normal(0, demand.ANOMALY_SD_C, (paths, 1))
        anomalies[:, k] = anomaly[:, 0]
    slow = np.empty((paths, steps))
    previous = np.full(paths, process.slow[origin - 1])
    for j in range(steps):
        previous = demand.SLOW_PERSISTENCE * previous + rng.normal(0, demand.SLOW_SD, paths)
        slow[:, j] = previous
    weather = demand._weather(process.climate_c[origin:] + anomalies[:, days_on])
    white = 1 + rng.normal(0, demand.WHITE_SD, (paths, steps))
    simulated = demand.BASE_LOAD * process.shape[origin:] * weather * (1 + slow) * white
    mean = simulated.mean(axis=0)
    assert np.max(np.abs(mean / expected - 1)) < 0.005
    # And a wrong closed form would show: today's anomaly held for the whole week is off by more.
    held = (
        demand.BASE_LOAD
        * process.shape[origin:]
        * demand._weather(process.climate_c[origin:] + process.anomaly[last_day])
    )
    assert np.max(np.abs(mean / held - 1)) > 0.01


def test_expected_demand_refuses_an_origin_outside_the_series():
    with pytest.raises(ValueError, match="origin"):
        demand.expected_demand(1, 0, 0)
    with pytest.raises(ValueError, match="origin"):
        demand.expected_demand(1, 0, 7 * STEPS_PER_DAY)
