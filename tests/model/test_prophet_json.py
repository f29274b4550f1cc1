"""prophet_json.to_json against stock `prophet.serialize.model_to_json`: byte for byte, on real fits.

The stock models are real Prophet objects as `Prophet.fit` leaves them: `Prophet.preprocess` prepares the
data and the in-process engine supplies the parameters (Stan's own where it falls back), over the fidelity
corpus and the configurations the issue names. Each is written three ways and must match stock: from
`FittedState.from_prophet`, from the engine's own numpy-built state, and again after a JSON round trip.
Country holidays and regressors are covered the same way, the engine's and Stan's own fits. A few stock
Stan fits cover what the engine does not produce (logistic growth, conditional seasonalities).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from prophet.serialize import model_from_json
from prophet.serialize import model_to_json as stock_model_to_json

from fleetcast.data.generate import customer_series
from fleetcast.model.conditions import add_condition_columns
from fleetcast.model.fit import engine, prophet_json
from fleetcast.model.fit.prophet_json import FittedState, NotExact, model_to_json, to_json
from fleetcast.model.prophet_model import new_prophet
from fleetcast.model.settings import ProphetSettings, Regressor
from tests.support import fit_fidelity

BASE = ProphetSettings(uncertainty_samples=0)


def _generated(start: str, periods: int, freq: str, rows: int, seed: int = 3) -> pd.DataFrame:
    stamps, values = customer_series(seed, seed, pd.date_range(start, periods=periods, freq=freq), rows)
    return pd.DataFrame({"ds": stamps, "y": values})


def _daily(rows: int = 365) -> pd.DataFrame:
    return _generated("2022-01-01", rows, "D", rows)


def _with_nan_rows() -> pd.DataFrame:
    frame = _daily(200)
    frame.loc[[3, 50, 51, 199], "y"] = np.nan  # history drops them, history_dates keeps them
    return frame


def _scaled(factor: float, offset: float = 0.0) -> pd.DataFrame:
    frame = _daily(300)
    frame["y"] = frame["y"] * factor + offset
    return frame


def _unsorted_with_duplicates() -> pd.DataFrame:
    frame = _daily(120)
    frame = pd.concat([frame, frame.iloc[[10, 11]]]).sample(frac=1.0, random_state=1).reset_index(drop=True)
    return frame  # history_dates' index is then a permutation, history has the duplicate dates


# name -> (history, settings): each configuration the issue names, fitted by the engine.
ENGINE_CASES: dict[str, tuple[Callable[[], pd.DataFrame], ProphetSettings]] = {
    "daily": (_daily, BASE),
    "daily-with-samples": (_daily, ProphetSettings()),
    "hourly": (lambda: _generated("2023-01-01", 24 * 21, "h", 24 * 21), BASE),
    "half-hourly": (lambda: _generated("2023-01-01", 48 * 14, "30min", 48 * 14), BASE),
    "gappy": (lambda: _generated("2021-06-01", 900, "D", 280), BASE),
    "nan-rows": (_with_nan_rows, BASE),
    "short-60": (lambda: _daily(60), BASE),
    "no-changepoints": (_daily, replace(BASE, n_changepoints=0)),
    "constant": (lambda: _daily(90).assign(y=42.0), BASE),
    "flat": (_daily, replace(BASE, growth="flat")),
    "multiplicative": (lambda: _daily(500), replace(BASE, seasonality_mode="multiplicative")),
    "seasonality-off": (
        _daily,
        replace(BASE, yearly_seasonality=False, weekly_seasonality=False, daily_seasonality=False),
    ),
    "custom-fourier": (
        lambda: _daily(800),
        replace(BASE, yearly_seasonality=13, weekly_seasonality=2, daily_seasonality=False),
    ),
    "tiny": (lambda: _scaled(1e-6), BASE),
    "huge": (lambda: _scaled(1e9), BASE),
    "negative": (lambda: _scaled(1.0, offset=-700.0), BASE),
    "unsorted-duplicates": (_unsorted_with_duplicates, BASE),
    # Daily seasonality by day type: history gains the boolean weekday/weekend columns after y.
    "half-hourly-day-type": (
        lambda: _generated("2023-01-01", 48 * 14, "30min", 48 * 14),
        replace(BASE, daily_by_day_type=True),
    ),
    "hourly-day-type-multiplicative": (
        lambda: _generated("2023-01-01", 24 * 21, "h", 24 * 21),
        replace(BASE, daily_by_day_type=True, seasonality_mode="multiplicative", daily_seasonality=3),
    ),
}
CORPUS_SIZE = 40


@functools.cache
def _engine_model(name: str):
    build, settings = ENGINE_CASES[name]
    return _stock_fitted(build(), settings)


def _stock_fitted(history: pd.DataFrame, settings: ProphetSettings):
    """(stock Prophet as `fit` leaves it, the engine's state or None where the engine used Stan)."""
    outcome = engine.fit(history, settings, engine.AUTO)
    if outcome.state is None:
        return outcome.stan_model, None
    model = new_prophet(settings)
    model.preprocess(add_condition_columns(history.copy(), model.seasonalities))
    model.params = outcome.state.params
    return model, outcome.state


def _stan_model(configure: Callable, history: pd.DataFrame, settings: ProphetSettings = BASE):
    logging.getLogger("cmdstanpy").setLevel(logging.ERROR)
    model = new_prophet(settings)
    configure(model)
    model.fit(history)
    return model


def _assert_identical(model, engine_state: FittedState | None = None) -> None:
    expected = stock_model_to_json(model)
    _assert_same(to_json(FittedState.from_prophet(model)), expected)
    if engine_state is not None:
        _assert_same(to_json(engine_state), expected)
    loaded = model_from_json(expected)  # read_json's dtypes, e.g. a float index for no changepoints
    _assert_same(to_json(FittedState.from_prophet(loaded)), stock_model_to_json(loaded))


def _assert_same(written: str, expected: str) -> None:
    if written != expected:
        at = next((i for i, (a, b) in enumerate(zip(written, expected, strict=False)) if a != b), None)
        at = min(len(written), len(expected)) if at is None else at
        pytest.fail(
            f"differs at {at}: ours {written[at - 80 : at + 40]!r}, stock {expected[at - 80 : at + 40]!r}"
        )


@pytest.mark.parametrize("name", ENGINE_CASES)
def test_named_configurations_are_byte_identical(name: str):
    _assert_identical(*_engine_model(name))


def test_fidelity_corpus_is_byte_identical():
    cases = list(fit_fidelity.corpus(CORPUS_SIZE))
    assert len(cases) >= CORPUS_SIZE
    for case in cases:
        _assert_identical(*_stock_fitted(case.history, case.settings))


def test_stan_fits_are_byte_identical():
    """Stan's own params (lp__ and all), logistic growth with cap, a regressor, a conditional seasonality."""
    history = _daily(150)
    history["temperature"] = np.sin(np.arange(len(history)) / 9.0) * 10.0
    history["promo"] = (np.arange(len(history)) % 11 == 0).astype(float)
    history["closed"] = (np.arange(len(history)) % 13 == 0).astype(np.int64)  # binary: not standardized
    history["weekend"] = history["ds"].dt.day_of_week >= 5
    _assert_identical(_stan_model(lambda m: None, _daily(150)))
    _assert_identical(
        _stan_model(
            lambda m: (
                m.add_regressor("temperature"),
                m.add_regressor("promo", mode="multiplicative"),
                m.add_regressor("closed"),
            ),
            history,
        )
    )
    _assert_identical(
        _stan_model(
            lambda m: m.add_seasonality("weekend_daily", period=1, fourier_order=2, condition_name="weekend"),
            history,
        )
    )
    capped = _daily(150).assign(cap=900.0)
    _assert_identical(_stan_model(lambda m: None, capped, replace(BASE, growth="logistic")))


@pytest.mark.parametrize("name", ["short-60", "custom-fourier"])  # both date formatters: few, many
def test_extreme_values_and_dates_are_written_as_pandas_writes_them(name: str):
    """Number and date formatting over magnitudes and dates no fit produces (written as stored)."""
    model = _copy(_engine_model(name)[0])
    rows = len(model.history)
    rng = np.random.default_rng(5)
    wild = rng.normal(size=rows) * 10.0 ** rng.integers(-20, 20, rows)
    wild[:8] = [np.nan, np.inf, -np.inf, -0.0, 5e-324, 1e17, 123456789.123456789, 0.5e-10]
    model.history["y"] = wild
    stamps = np.datetime64("1700-01-01", "ns") + np.sort(rng.integers(0, 2**62, rows)).astype(
        "timedelta64[ns]"
    )
    stamps[:3] = np.array(
        ["1969-12-31T23:59:59.9995", "1970-01-01", "2000-02-29T12:00:00.0015"], "datetime64[ns]"
    )
    model.history["ds"] = stamps
    model.history_dates = pd.Series(stamps, name="ds")
    _assert_identical(model)


def _copy(model):
    """A copy to alter (the fitted models are shared between tests)."""
    return model_from_json(stock_model_to_json(model))


def test_round_trip_predicts_as_the_original():
    for name in ("daily-with-samples", "nan-rows", "multiplicative", "half-hourly", "no-changepoints"):
        original = _engine_model(name)[0]
        loaded = model_from_json(to_json(FittedState.from_prophet(original)))
        last = original.history_dates.max() + pd.Timedelta(days=10)
        future = pd.DataFrame({"ds": pd.date_range(original.history_dates.min(), last, periods=60)})
        np.random.seed(0)
        expected = original.predict(future)
        np.random.seed(0)
        got = loaded.predict(future)
        pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_a_state_built_from_plain_numpy_with_nanosecond_dates():
    """What the fit engine builds: fresh arrays, datetime64[ns] (pandas 3 keeps microseconds)."""
    model = _engine_model("nan-rows")[0]
    state = FittedState.from_prophet(model)

    def fresh(values: np.ndarray) -> np.ndarray:
        return values.astype("datetime64[ns]") if values.dtype.kind == "M" else values.copy()

    built = replace(
        state,
        changepoints=fresh(state.changepoints),
        changepoints_index=np.asarray(state.changepoints_index.tolist(), dtype=np.int64),
        history_dates=fresh(state.history_dates),
        history={name: fresh(values) for name, values in state.history.items()},
        component_cols=np.array(state.component_cols.tolist(), dtype=np.int64),
        params={name: np.array(value.tolist()) for name, value in state.params.items()},
    )
    assert built.history["ds"].dtype == np.dtype("datetime64[ns]")
    assert to_json(built) == stock_model_to_json(model)


@pytest.mark.parametrize(
    "country",
    ["US", "MX", "VN", "IL"],  # MX: accents, VN: a slash, IL: both; pandas and json.dumps escape them
)
def test_country_holidays_and_regressors_are_byte_identical(country: str):
    history = _daily(400)
    history["temperature"] = 10 + 8 * np.sin(np.arange(len(history)) / 40.0)
    settings = replace(BASE, country_holidays=country, regressors=(Regressor("temperature"),))
    _assert_identical(*_stock_fitted(history, settings))
    _assert_identical(_stan_model(lambda m: None, history, settings))


def test_driver_corpus_is_byte_identical():
    for case in fit_fidelity.driver_corpus(7):
        _assert_identical(*_stock_fitted(case.history, case.settings))


def test_holidays_fall_back_to_stock():
    holidays = pd.DataFrame({"holiday": "closing", "ds": pd.to_datetime(["2022-03-01", "2022-07-04"])})
    model = _stan_model(lambda m: None, _daily(200))
    model_with = new_prophet(BASE)
    model_with.holidays = holidays
    model_with.fit(_daily(200))
    with pytest.raises(NotExact, match="custom holidays frame"):
        to_json(FittedState.from_prophet(model_with))
    assert model_to_json(model_with) == stock_model_to_json(model_with)
    assert model_to_json(model) == stock_model_to_json(model)


def test_column_names_are_escaped_as_pandas_and_json_escape_them():
    model = _copy(_engine_model("short-60")[0])
    model.history = model.history.rename(columns={"floor": 'floor "quoted"/ \\ é'})
    _assert_same(to_json(FittedState.from_prophet(model)), stock_model_to_json(model))


def test_what_cannot_be_exact_raises_not_exact():
    model = _copy(_engine_model("short-60")[0])
    state = FittedState.from_prophet(model)
    with pytest.raises(NotExact, match="not a string"):
        to_json(replace(state, history={**state.history, 7: state.history["y"]}))
    with pytest.raises(NotExact, match="float32"):
        to_json(replace(state, history={**state.history, "y": state.history["y"].astype(np.float32)}))
    # A customer id column Prophet carries along: stock writes it, this writer declines.
    model.history["customer"] = "c-7"
    with pytest.raises(NotExact):
        to_json(FittedState.from_prophet(model))
    assert model_to_json(model) == stock_model_to_json(model)


def test_another_prophet_version_falls_back_to_stock(monkeypatch: pytest.MonkeyPatch):
    """The format is pinned to one Prophet release; under any other, stock serialization writes it."""
    model = _engine_model("short-60")[0]
    monkeypatch.setattr(prophet_json, "PROPHET_VERSION", "0.0.0")
    prophet_json._check_prophet_version.cache_clear()
    try:
        with pytest.raises(NotExact, match=r"written for prophet 0\.0\.0"):
            to_json(FittedState.from_prophet(model))
        assert model_to_json(model) == stock_model_to_json(model)
    finally:
        prophet_json._check_prophet_version.cache_clear()
