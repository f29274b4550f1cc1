"""The compiled predictor with country holidays and regressors against Prophet's own predict.

Same tolerances as tests/model/test_compiled.py (1e-9 relative: in fact bit-identical), on real Stan fits
and on the engine's fits read back from model.json, over forecasts that cross holidays, that lie years past
the training data, and that come unsorted.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from fleetcast.model import country_holidays
from fleetcast.model.compiled import (
    CompiledModel,
    MissingRegressorError,
    compile_model,
    compile_model_json,
    compile_state,
    future_dates,
)
from fleetcast.model.fit import engine
from fleetcast.model.prophet_model import fit_prophet, model_from_json, model_to_json
from fleetcast.model.settings import ProphetSettings, Regressor
from tests.model.test_compiled import _assert_close
from tests.support.fit_fidelity import HORIZON, driver_corpus

TEMPERATURE = (Regressor("temperature"),)
# name -> (history kind, settings)
CONFIGS: dict[str, tuple[str, ProphetSettings]] = {
    "us-holidays": ("daily", ProphetSettings(country_holidays="US", uncertainty_samples=300)),
    "temperature": ("daily", ProphetSettings(regressors=TEMPERATURE, uncertainty_samples=300)),
    "drivers-additive": (
        "daily",
        ProphetSettings(country_holidays="GB", regressors=TEMPERATURE, holidays_prior_scale=2.0),
    ),
    "drivers-multiplicative": (
        "daily",
        ProphetSettings(
            country_holidays="DE",
            seasonality_mode="multiplicative",
            regressors=(Regressor("temperature", "additive"), Regressor("promo")),
            regressor_prior_scale=0.5,
        ),
    ),
    "drivers-flat-no-seasonality": (
        "daily",
        ProphetSettings(
            growth="flat",
            yearly_seasonality=False,
            weekly_seasonality=False,
            country_holidays="MX",
            regressors=(Regressor("promo", "multiplicative"),),
            uncertainty_samples=200,
        ),
    ),
    "hourly-drivers": ("hourly", ProphetSettings(country_holidays="US", regressors=TEMPERATURE)),
}
FREQ = {"daily": "D", "hourly": "h"}


def _history(kind: str) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    if kind == "daily":
        ds = pd.date_range("2021-09-01", periods=500, freq="D")
    else:
        ds = pd.date_range("2022-12-01", periods=24 * 35, freq="h")
    days = np.arange(len(ds)) / (1 if kind == "daily" else 24)
    temperature = 10 - 9 * np.cos(2 * np.pi * (days + 240) / 365.25) + rng.normal(0, 2, len(ds))
    promo = (rng.uniform(size=len(ds)) < 0.1).astype(float)
    ns = ds.to_numpy(dtype="datetime64[ns]").view(np.int64)
    names = country_holidays.training_names("US", ns)
    holiday = country_holidays.features("US", names, ns).max(axis=1)
    y = (
        200
        + 0.05 * days
        + 4 * np.maximum(15 - temperature, 0)
        + 15 * promo
        - 40 * holiday
        + 10 * np.sin(2 * np.pi * days / 7)
        + rng.normal(0, 3, len(ds))
    )
    return pd.DataFrame({"ds": ds, "y": y, "temperature": temperature, "promo": promo})


@functools.cache
def fitted(name: str, source: str):
    kind, settings = CONFIGS[name]
    history = _history(kind)[["ds", "y", *settings.regressor_names]]
    if source == "stan":
        return fit_prophet(history, settings)
    return model_from_json(engine.fit(history, settings).to_json())  # what serving loads


def _date_sets(model, freq: str) -> dict[str, np.ndarray]:
    last = model.history["ds"].max()
    history = model.history["ds"].to_numpy(dtype="datetime64[ns]")
    ahead = future_dates(last, 120, freq)
    return {
        "week": ahead[:7],
        "months": ahead,  # crosses the new year's holidays
        "history-and-future": np.concatenate([history[-5:], ahead[:5]]),
        "unsorted": ahead[::-1][:40],
        # Years past the training calendar: Christmas and the new year in 2031-2032.
        "years-later": np.arange("2031-12-20", "2032-01-05", dtype="datetime64[D]").astype("datetime64[ns]"),
    }


def _regressors(model, dates: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = {
        "temperature": rng.normal(6, 4, len(dates)),
        "promo": (rng.uniform(size=len(dates)) < 0.2) * 1.0,
    }
    return {name: values[name] for name in model.extra_regressors}


def _prophet_predict(model, dates: np.ndarray, regressors: dict[str, np.ndarray], seed: int) -> pd.DataFrame:
    np.random.seed(seed)
    return model.predict(pd.DataFrame({"ds": dates, **regressors}))


@pytest.mark.parametrize("source", ["stan", "engine"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_forecast_components_and_intervals_match_prophet(name: str, source: str) -> None:
    model = fitted(name, source)
    compiled = compile_model(model)
    from_json = compile_model_json(model_to_json(model))
    again = CompiledModel.from_dict(compiled.to_dict())
    components = [c for c in model.train_component_cols.columns if c != "zeros"]
    assert "holidays" in components or "extra_regressors_additive" in components or model.extra_regressors
    for label, dates in _date_sets(model, FREQ[CONFIGS[name][0]]).items():
        regressors = _regressors(model, dates, len(dates))
        seed = 99 + len(dates)
        expected = _prophet_predict(model, dates, regressors, seed)
        what = f"{name}/{source}/{label}"
        for predictor in (compiled, from_json, again):
            ours = predictor.predict(
                dates, components=True, seed=np.random.RandomState(seed), regressors=regressors
            )
            np.testing.assert_array_equal(
                ours.ds, expected["ds"].to_numpy(dtype="datetime64[ns]"), err_msg=what
            )
            for column in ("yhat", "yhat_lower", "yhat_upper", "trend_lower", "trend_upper"):
                _assert_close(
                    getattr(ours, column), expected[column].to_numpy(), compiled.y_scale, what + column
                )
            for column in ["trend", *components]:
                _assert_close(
                    ours.components[column], expected[column].to_numpy(), compiled.y_scale, f"{what} {column}"
                )


def test_a_holiday_years_after_training_is_honoured() -> None:
    model = fitted("us-holidays", "engine")
    compiled = compile_model(model)
    christmas = np.array(["2031-12-24", "2031-12-25", "2031-12-26"], dtype="datetime64[ns]")
    forecast = compiled.predict(christmas, components=True, intervals=False)
    holidays = forecast.components["holidays"]
    assert holidays[1] != 0 and holidays[0] == 0 and holidays[2] == 0
    assert holidays[1] == forecast.components["Christmas Day"][1]
    expected = model.predict(pd.DataFrame({"ds": christmas}))
    _assert_close(forecast.yhat, expected["yhat"].to_numpy(), compiled.y_scale, "yhat")


def test_compiled_from_the_engine_state_equals_compiled_from_its_json() -> None:
    for case in driver_corpus(7):
        outcome = engine.fit(case.history, case.settings)
        assert outcome.engine_used == engine.EXACT, outcome.fallback_reason
        dates = future_dates(case.history["ds"].max(), HORIZON, case.freq)
        regressors = case.future_regressors
        ours = compile_state(outcome.state).predict(dates, intervals=False, regressors=regressors)
        theirs = compile_model_json(outcome.to_json()).predict(dates, intervals=False, regressors=regressors)
        np.testing.assert_array_equal(ours.yhat, theirs.yhat, err_msg=case.name)


def test_a_missing_or_wrong_length_regressor_is_named() -> None:
    compiled = compile_model(fitted("drivers-multiplicative", "engine"))
    dates = future_dates(np.datetime64("2023-01-13"), 3, "D")
    with pytest.raises(MissingRegressorError, match=r"'temperature' needs 3 values .*got none"):
        compiled.predict(dates, regressors={"promo": [0, 1, 0]})
    with pytest.raises(MissingRegressorError, match=r"'promo' needs 3 values .*got 2"):
        compiled.predict(dates, regressors={"temperature": [1, 2, 3], "promo": [0, 1]})
    with pytest.raises(ValueError, match="not finite"):
        compiled.predict(dates, regressors={"temperature": [1, np.nan, 3], "promo": [0, 1, 0]})
    assert compiled.regressor_names == ("temperature", "promo")


def test_models_without_drivers_keep_the_first_format_version() -> None:
    plain = compile_model(fit_prophet(_history("daily")[["ds", "y"]], ProphetSettings(uncertainty_samples=0)))
    assert plain.to_dict()["format_version"] == 1
    assert compile_model(fitted("temperature", "engine")).to_dict()["format_version"] == 2
