"""The seasonal-naive model kind: what it keeps, what it predicts, its intervals and its JSON form."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fleetcast.model import baseline
from fleetcast.model.baseline import BaselineError, SeasonalNaive

WEEK = np.timedelta64(7, "D")


def history(freq: str = "D", periods: int = 60, seed: int = 0, gaps: bool = False):
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2023-03-01", periods=periods, freq=freq).to_numpy(dtype="datetime64[ns]")
    if gaps:  # irregular: drop a third of the rows at random
        ds = np.sort(rng.choice(ds, size=2 * periods // 3, replace=False))
    y = 100 + 10 * np.sin(np.arange(len(ds))) + rng.normal(0, 1, len(ds))
    return ds, y


def reference(ds: np.ndarray, y: np.ndarray, dates: np.ndarray) -> list[float]:
    """By the definition, one date at a time: the last value at or before date - k weeks, with k the
    fewest whole weeks (at least one) reaching back to the last observation."""
    out = []
    for date in dates:
        k = 1
        while date - k * WEEK > ds[-1]:
            k += 1
        earlier = np.nonzero(ds <= date - k * WEEK)[0]
        out.append(float(y[earlier[-1]]) if len(earlier) else float(y[0]))
    return out


def fitted(ds, y, intervals: bool = True, width: float = 0.8) -> SeasonalNaive:
    return baseline.fit(ds, y, freq="D", interval_width=width, intervals=intervals)


@pytest.mark.parametrize(("freq", "gaps"), [("D", False), ("D", True), ("30min", False), ("7h", True)])
def test_the_fitted_model_predicts_what_the_whole_history_would(freq: str, gaps: bool):
    ds, y = history(freq, periods=900 if freq.endswith(("min", "h")) else 60, gaps=gaps)
    step = pd.tseries.frequencies.to_offset(freq).nanos * np.timedelta64(1, "ns")
    future = ds[-1] + step * np.arange(1, 600)
    odd = ds[-1] + np.timedelta64(1, "s") * np.arange(1, 3 * 7 * 86_400, 9_999)  # off the grid
    model = fitted(ds, y)
    for dates in (future, odd):
        expected = reference(ds, y, dates)
        assert baseline.forecast_values(ds, y, dates).tolist() == expected
        assert model.predict(dates, intervals=False).yhat.tolist() == expected
    # It keeps one week of values and the observation before it, not the history.
    assert model.stamps_ns[0] <= (ds[-1] - WEEK).astype(np.int64) < model.stamps_ns[1]
    assert len(model.values) < len(y)


def test_dates_before_the_history_repeat_its_first_value():
    ds, y = history(periods=10)
    before = np.array([ds[0] - WEEK, ds[3]], dtype="datetime64[ns]")
    assert baseline.forecast_values(ds, y, before).tolist() == [y[0], y[0]]


def test_intervals_bound_the_one_week_errors_and_widen_with_the_weeks_back():
    ds, y = history(periods=200, seed=3)
    model = fitted(ds, y, width=0.9)
    errors = y[7:] - y[:-7]  # daily rows without gaps: one week back is seven rows back
    assert model.residual_lower == pytest.approx(np.quantile(errors, 0.05))
    assert model.residual_upper == pytest.approx(np.quantile(errors, 0.95))
    dates = ds[-1] + np.timedelta64(1, "D") * np.arange(1, 22)  # three weeks: 1, 2 and 3 weeks back
    predicted = model.predict(dates, intervals=True)
    weeks_back = np.repeat([1.0, 2.0, 3.0], 7)
    np.testing.assert_allclose(
        predicted.yhat_lower - predicted.yhat, model.residual_lower * np.sqrt(weeks_back)
    )
    np.testing.assert_allclose(
        predicted.yhat_upper - predicted.yhat, model.residual_upper * np.sqrt(weeks_back)
    )
    assert np.all(predicted.yhat_lower < predicted.yhat) and np.all(predicted.yhat < predicted.yhat_upper)


def test_the_interval_covers_about_its_width_of_later_values():
    rng = np.random.default_rng(11)
    days = 7 * 80
    shape = np.tile(rng.normal(0, 20, 7), days // 7)
    y = 500 + shape + rng.normal(0, 5, days)
    ds = pd.date_range("2022-01-03", periods=days, freq="D").to_numpy(dtype="datetime64[ns]")
    model = fitted(ds[:-70], y[:-70], width=0.8)
    hits = 0
    for week in range(10):  # each later week, forecast from the week before
        start = len(ds) - 70 + 7 * week
        one_week = baseline.fit(ds[:start], y[:start], freq="D", interval_width=0.8, intervals=True)
        predicted = one_week.predict(ds[start : start + 7], intervals=True)
        actual = y[start : start + 7]
        hits += int(np.sum((predicted.yhat_lower <= actual) & (actual <= predicted.yhat_upper)))
    assert 0.65 <= hits / 70 <= 0.95
    assert model.residual_lower < 0 < model.residual_upper


def test_less_than_a_week_still_gives_an_interval():
    ds, y = history(periods=4)
    model = fitted(ds, y)
    assert model.residual_lower < 0 < model.residual_upper
    assert np.all(np.isfinite(model.predict(ds[-1:] + WEEK, intervals=True).yhat_upper))


def test_a_model_without_intervals_refuses_to_give_them():
    ds, y = history()
    with pytest.raises(ValueError, match="without intervals"):
        fitted(ds, y, intervals=False).predict(ds[-1:] + WEEK, intervals=True)


def test_the_json_form_round_trips_exactly():
    ds, y = history("30min", periods=1000, gaps=True)
    model = baseline.fit(ds, y, freq="30min", interval_width=0.8, intervals=True)
    again = SeasonalNaive.from_json(model.to_json())
    assert again.to_json() == model.to_json()
    dates = ds[-1] + np.timedelta64(30, "m") * np.arange(1, 500)
    one, two = model.predict(dates, intervals=True), again.predict(dates, intervals=True)
    assert one.yhat.tolist() == two.yhat.tolist() and one.yhat_upper.tolist() == two.yhat_upper.tolist()
    assert again.freq == "30min" and again.last_observation == ds[-1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="prophet"), "not a fleetcast-seasonal-naive document"),
        (lambda d: d.update(format_version=99), "format_version 99"),
        (lambda d: d.pop("values"), "missing field 'values'"),
        (lambda d: d.update(values=d["values"][1:]), "equally long"),
        (lambda d: d.update(stamps_ns=d["stamps_ns"][::-1]), "must ascend"),
        (lambda d: d.update(values=["x"] * len(d["values"])), "wrong type"),
        (lambda d: d.update(residual_upper=None), "wrong type"),
    ],
)
def test_a_bad_document_is_refused_by_name(change, message: str):
    ds, y = history()
    document = fitted(ds, y).to_dict()
    change(document)
    with pytest.raises(BaselineError, match=message):
        SeasonalNaive.from_dict(json.loads(json.dumps(document)))
    with pytest.raises(BaselineError, match="not JSON"):
        SeasonalNaive.from_json("{")
