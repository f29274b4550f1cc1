"""Holdout scoring helpers: the seasonal-naive baseline against its definition, written out longhand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fleetcast.training import evaluate
from fleetcast.training.inputs import History


def naive_longhand(history: History, dates: np.ndarray) -> list[float]:
    train = history.frame()
    last, out = train["ds"].iloc[-1], []
    for date in dates:
        weeks = max(int(np.ceil((date - last) / pd.Timedelta(days=7))), 1)
        target = date - weeks * pd.Timedelta(days=7)
        before = train[train["ds"] <= target]
        out.append(float(before["y"].iloc[-1]) if len(before) else float(train["y"].iloc[0]))
    return out


@pytest.mark.parametrize("freq", ["D", "h", "30min", "3D"])
def test_seasonal_naive_repeats_the_value_whole_weeks_back(freq: str):
    rng = np.random.default_rng(len(freq))
    grid = pd.date_range("2022-01-01", periods=2000, freq=freq)
    ds = pd.Series(np.sort(rng.choice(grid, size=300, replace=True)))  # gaps and duplicate stamps
    history = History(ds=ds.to_numpy(dtype="datetime64[ns]"), y=rng.normal(size=300))
    split = evaluate.split_holdout(history, 9)
    assert (split.holdout.ds > history.ds[-1] - np.timedelta64(9, "D")).all()
    assert (split.train.ds <= history.ds[-1] - np.timedelta64(9, "D")).all()
    assert len(split.train) + len(split.holdout) == len(history)
    expected = naive_longhand(split.train, split.holdout.ds)
    assert evaluate.seasonal_naive(split.train, split.holdout.ds).tolist() == expected


def test_seasonal_naive_before_the_first_observation_uses_the_first_value():
    train = History(ds=np.array(["2022-01-05", "2022-01-06"], dtype="datetime64[ns]"), y=np.array([3.0, 4.0]))
    dates = np.array(["2022-01-07", "2022-01-13"], dtype="datetime64[ns]")
    assert evaluate.seasonal_naive(train, dates).tolist() == [3.0, 4.0]
