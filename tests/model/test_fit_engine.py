"""The in-process engine's artifact is the model.json stock Prophet writes for the same fitted parameters."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from fleetcast.model import prophet_model, seasonal_change
from fleetcast.model.conditions import add_condition_columns
from fleetcast.model.fit import engine
from fleetcast.model.settings import ProphetSettings, Regressor
from tests.support.fit_fidelity import corpus, driver_corpus

BASE = ProphetSettings(uncertainty_samples=0)


def _stock_with_params(history: pd.DataFrame, settings: ProphetSettings, params) -> str:
    """Stock Prophet prepared on the same history and holding the engine's parameters, serialised."""
    model = prophet_model.new_prophet(settings)
    model.preprocess(add_condition_columns(history, model.seasonalities))
    model.params = params
    return prophet_model.model_to_json(model)


def _cases():
    rng = np.random.default_rng(3)
    daily = pd.date_range("2022-01-01", periods=300, freq="D")
    values = 100 + 10 * np.sin(np.arange(300) / 3) + rng.normal(0, 1, 300)
    half_hourly = pd.date_range("2023-02-01", periods=48 * 21, freq="30min")
    hour = half_hourly.hour.to_numpy() + half_hourly.minute.to_numpy() / 60
    weekend = half_hourly.day_of_week.to_numpy() >= 5
    shape = np.where(
        weekend, 5 * np.sin(2 * np.pi * (hour - 10) / 24), 20 * np.sin(2 * np.pi * (hour - 7) / 24)
    )
    load = 100 + shape + rng.normal(0, 1, len(half_hourly))
    extra = [
        (
            "nan-rows",
            pd.DataFrame({"ds": daily, "y": np.where(np.arange(300) % 17 == 0, np.nan, values)}),
            BASE,
        ),
        ("duplicates", pd.DataFrame({"ds": daily[:150].repeat(2), "y": values}), BASE),
        ("constant-flat", pd.DataFrame({"ds": daily, "y": np.full(300, 3.0)}), replace(BASE, growth="flat")),
        (
            "constant-no-cp",
            pd.DataFrame({"ds": daily, "y": np.full(300, 3.0)}),
            replace(BASE, n_changepoints=0),
        ),
        ("no-cp", pd.DataFrame({"ds": daily, "y": values}), replace(BASE, n_changepoints=0)),
        ("intervals", pd.DataFrame({"ds": daily, "y": values}), replace(BASE, uncertainty_samples=200)),
        ("all-off", pd.DataFrame({"ds": daily, "y": values}), replace(BASE, weekly_seasonality=False)),
        (
            "orders",
            pd.DataFrame({"ds": daily, "y": values}),
            replace(BASE, yearly_seasonality=3, daily_seasonality=True),
        ),
        (
            "day-type-half-hourly",
            pd.DataFrame({"ds": half_hourly, "y": load}),
            replace(BASE, daily_by_day_type=True),
        ),
        (
            "day-type-multiplicative",
            pd.DataFrame({"ds": half_hourly, "y": load}),
            replace(BASE, daily_by_day_type=True, seasonality_mode="multiplicative", daily_seasonality=7),
        ),
    ]
    # What the weekly-change candidate fits: the week-over-week change, flat growth, day types.
    change_ds, change = seasonal_change.changes(half_hourly.to_numpy(dtype="datetime64[ns]"), load)
    extra.append(
        (
            "weekly-change-half-hourly",
            pd.DataFrame({"ds": change_ds, "y": change}),
            seasonal_change.part_settings(replace(BASE, daily_by_day_type=True, daily_seasonality=12)),
        )
    )
    drivers = replace(BASE, country_holidays="US", regressors=(Regressor("temperature"),))
    temperature = rng.normal(8, 4, 300)
    extra += [
        (
            "drivers-nan-rows",
            pd.DataFrame(
                {
                    "ds": daily,
                    "y": np.where(np.arange(300) % 13 == 0, np.nan, values),
                    "temperature": temperature,
                }
            ),
            drivers,
        ),
        (
            # Prophet keeps the frame's column order in the history
            "drivers-column-order",
            pd.DataFrame({"temperature": temperature, "y": values, "ds": daily}),
            drivers,
        ),
        (
            "drivers-constant",
            pd.DataFrame({"ds": daily, "y": np.full(300, 3.0), "temperature": temperature}),
            drivers,
        ),
        (
            "drivers-intervals",
            pd.DataFrame({"ds": daily, "y": values, "temperature": temperature}),
            replace(drivers, uncertainty_samples=200),
        ),
    ]
    cases = [(c.name, c.history, c.settings) for c in corpus(27)] + extra
    return cases + [(c.name, c.history, c.settings) for c in driver_corpus(14)]


CASES = _cases()


@pytest.mark.parametrize(("name", "history", "settings"), CASES, ids=[c[0] for c in CASES])
def test_exact_json_is_what_stock_prophet_writes(name, history, settings):
    outcome = engine.fit(history, settings)
    assert outcome.engine_used == engine.EXACT, outcome.fallback_reason
    assert outcome.to_json() == _stock_with_params(history, settings, outcome.state.params)


def test_forecast_values_are_stock_predict_on_the_loaded_archive():
    history = next(c for c in corpus(9) if c.name.startswith("seed-daily")).history
    outcome = engine.fit(history, BASE)
    loaded = prophet_model.model_from_json(outcome.to_json())
    future = pd.Series(pd.date_range(history["ds"].iloc[-1], periods=15, freq="D")[1:])
    np.testing.assert_allclose(
        engine.forecast_values(outcome, future), prophet_model.predict_values(loaded, future), rtol=1e-12
    )


def test_unsorted_history_is_fit_by_stan_loudly():
    history = next(c for c in corpus(9) if c.name.startswith("short")).history
    outcome = engine.fit(history.iloc[::-1], BASE, label="reversed")
    assert outcome.engine_used == engine.STAN
    assert "unsorted" in outcome.fallback_reason
