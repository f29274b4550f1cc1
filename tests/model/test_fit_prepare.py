"""The numpy preparation equals stock Prophet's `preprocess` and `calculate_initial_params`, bit for bit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from fleetcast.model import prophet_model
from fleetcast.model.conditions import add_condition_columns
from fleetcast.model.fit import prepare
from fleetcast.model.fit.problem import FitProblem
from fleetcast.model.settings import ProphetSettings, Regressor
from tests.support.fit_fidelity import corpus, driver_corpus

BASE = ProphetSettings(uncertainty_samples=0)
DAY_TYPE = replace(BASE, daily_by_day_type=True)


def _edge_cases() -> list[tuple[str, pd.DataFrame, ProphetSettings]]:
    rng = np.random.default_rng(5)
    daily = pd.date_range("2021-03-01", periods=800, freq="D")
    cases = [
        ("no-seasonality", daily, replace(BASE, yearly_seasonality=False, weekly_seasonality=False)),
        ("all-on-daily", daily, replace(BASE, yearly_seasonality=True, daily_seasonality=True)),
        ("two-years", pd.date_range("2020-01-01", periods=731, freq="D"), BASE),
        ("no-changepoints", daily[:90], replace(BASE, n_changepoints=0)),
        ("more-changepoints-than-rows", daily[:12], replace(BASE, n_changepoints=40)),
        ("tiny", daily[:3], BASE),
        ("weekly-steps", pd.date_range("2020-01-05", periods=120, freq="W"), BASE),
        ("sub-second", pd.date_range("2024-01-01", periods=300, freq="250ms"), BASE),
        (
            "minutes",
            pd.date_range("2024-01-01", periods=3000, freq="min"),
            replace(BASE, daily_seasonality=5),
        ),
        ("flat", daily[:200], replace(BASE, growth="flat")),
        (
            "multiplicative-custom",
            daily,
            replace(BASE, seasonality_mode="multiplicative", yearly_seasonality=4, weekly_seasonality=2),
        ),
        ("range-and-scales", daily, replace(BASE, changepoint_range=0.33, changepoint_prior_scale=0.9)),
        # Daily seasonality by day type (weekday/weekend conditions computed from ds), sub-daily data.
        ("day-type-half-hourly", pd.date_range("2023-01-02", periods=48 * 20, freq="30min"), DAY_TYPE),
        (
            "day-type-multiplicative-order",
            pd.date_range("2022-12-30 07:00", periods=24 * 30, freq="h"),
            replace(DAY_TYPE, seasonality_mode="multiplicative", daily_seasonality=6, weekly_seasonality=2),
        ),
    ]
    built = []
    for name, stamps, settings in cases:
        values = 50 + 10 * np.sin(np.arange(len(stamps)) / 7) + rng.normal(0, 2, len(stamps))
        built.append((name, pd.DataFrame({"ds": stamps, "y": values}), settings))
    duplicated = pd.DataFrame({"ds": daily[:100].repeat(2), "y": rng.normal(10, 1, 200)})
    built.append(("duplicate-timestamps", duplicated, BASE))
    negative = pd.DataFrame({"ds": daily[:200], "y": rng.normal(-3e6, 1e5, 200)})
    built.append(("negative-huge", negative, BASE))
    built.append(("constant", pd.DataFrame({"ds": daily[:50], "y": np.full(50, 4.2)}), BASE))
    built.append(("zeros", pd.DataFrame({"ds": daily[:50], "y": np.zeros(50)}), replace(BASE, growth="flat")))
    return built


def _driver_edge_cases() -> list[tuple[str, pd.DataFrame, ProphetSettings]]:
    """Holidays and regressors at their edges: names needing escapes, constant and 0/1 regressors,
    a calendar year with no rows, sub-daily rows on a holiday, a model with regressors only."""
    rng = np.random.default_rng(9)
    daily = pd.date_range("2022-11-20", periods=120, freq="D")
    frame = pd.DataFrame({"ds": daily, "y": rng.normal(50, 5, 120), "temperature": rng.normal(5, 3, 120)})
    hourly = pd.date_range("2023-12-20", periods=24 * 20, freq="h")
    hourly_frame = pd.DataFrame({"ds": hourly, "y": rng.normal(9, 1, len(hourly))})
    flags = frame.assign(flag=(np.arange(120) % 5 == 0).astype(float), same=3.0)
    none = replace(BASE, yearly_seasonality=False, weekly_seasonality=False, daily_seasonality=False)
    return [
        ("mexico-accents", frame, replace(BASE, country_holidays="MX")),
        ("vietnam-slash", frame, replace(BASE, country_holidays="VN", seasonality_mode="multiplicative")),
        ("israel", frame, replace(BASE, country_holidays="IL", holidays_prior_scale=0.5)),
        ("hourly-christmas", hourly_frame, replace(BASE, country_holidays="GB")),
        (
            "binary-and-constant-regressors",
            flags,
            replace(BASE, regressors=(Regressor("flag"), Regressor("same", "multiplicative"))),
        ),
        ("regressor-only", frame, replace(none, regressors=(Regressor("temperature"),))),
        ("holidays-only", frame, replace(none, country_holidays="US")),
    ]


CASES = (
    [(case.name, case.history, case.settings) for case in corpus(36)]
    + _edge_cases()
    + [(case.name, case.history, case.settings) for case in driver_corpus(7)]
    + _driver_edge_cases()
)


def _stock(history: pd.DataFrame, settings: ProphetSettings):
    model = prophet_model.new_prophet(settings)
    inputs = model.preprocess(add_condition_columns(history, model.seasonalities))
    return model, FitProblem.from_model_inputs(inputs, model.calculate_initial_params(inputs.K))


def _same(ours: np.ndarray, stock: np.ndarray, what: str) -> None:
    ours, stock = np.asarray(ours), np.asarray(stock)
    assert ours.shape == stock.shape, what
    # Bit for bit: equal values (NaN nowhere) and the same sign of zero.
    assert np.array_equal(ours, stock), f"{what}: largest difference {np.max(np.abs(ours - stock))}"


@pytest.mark.parametrize(("name", "history", "settings"), CASES, ids=[c[0] for c in CASES])
def test_prepare_equals_stock_preprocess(name, history, settings):
    model, stock = _stock(history, settings)
    ds = history["ds"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    regressors = {name: history[name].to_numpy(dtype=float) for name in settings.regressor_names}
    ours = prepare.prepare(ds, history["y"].to_numpy(dtype=float), settings, regressors)
    problem = ours.problem
    for field in ("t", "y", "cap", "X", "sigmas", "s_a", "s_m", "t_change"):
        _same(getattr(problem, field), getattr(stock, field), field)
    assert (problem.tau, problem.trend_indicator) == (stock.tau, stock.trend_indicator)
    assert (problem.init.k, problem.init.m, problem.init.sigma_obs) == (
        stock.init.k,
        stock.init.m,
        stock.init.sigma_obs,
    )
    assert type(problem.init.k) is type(model.calculate_initial_params(len(stock.sigmas)).k)  # flat: int 0
    _same(problem.init.delta, stock.init.delta, "init delta")
    _same(problem.init.beta, stock.init.beta, "init beta")

    grid = ours.grid
    assert ours.y_scale == model.y_scale
    assert grid.start_ns == model.start.value and grid.t_scale_ns == model.t_scale.value
    assert list(grid.seasonalities.items()) == list(model.seasonalities.items())
    assert grid.component_modes == model.component_modes
    assert grid.n_changepoints == model.n_changepoints
    _same(grid.changepoints_t, model.changepoints_t, "changepoints_t")
    assert grid.changepoints_t.dtype == np.asarray(model.changepoints_t).dtype
    _same(grid.changepoints_ns, model.changepoints.to_numpy(dtype="datetime64[ns]").view(np.int64), "cp")
    _same(grid.changepoint_rows, model.changepoints.index.to_numpy(), "changepoint rows")
    cols = model.train_component_cols
    ours_cols = grid.component_columns()
    assert list(ours_cols) == list(cols.columns)
    for column in cols.columns:
        _same(ours_cols[column], cols[column].to_numpy(), f"component {column}")
    assert ours.constant == bool(model.history["y"].min() == model.history["y"].max())
    names = model.train_holiday_names
    assert grid.holiday_names == (None if names is None else tuple(names))
    for regressor, props in model.extra_regressors.items():
        assert ours.regressor_scales[regressor] == (props["mu"], props["std"]), regressor
        _same(ours.regressor_values[regressor], model.history[regressor].to_numpy(), f"history {regressor}")


def test_fourier_days_equal_pandas_total_seconds_at_any_resolution():
    rng = np.random.default_rng(11)
    stamps = np.sort(rng.integers(-(2**62), 2**62, 20_000)).astype(np.int64)
    series = pd.Series(stamps.view("datetime64[ns]"))
    expected = ((series - pd.Timestamp("1970-01-01")).dt.total_seconds() / (24 * 60 * 60)).to_numpy()
    _same(prepare.fourier_days(stamps), expected, "days")


def test_grids_are_shared_between_series_on_the_same_timestamps():
    stamps = pd.date_range("2022-01-01", periods=365, freq="D").to_numpy().view(np.int64)
    first = prepare.prepare(stamps, np.arange(365.0), BASE)
    second = prepare.prepare(stamps.copy(), np.arange(365.0) * 2, BASE)
    assert first.grid is second.grid
    assert first.problem.shared is second.problem.shared
    other = prepare.prepare(stamps, np.arange(365.0), replace(BASE, n_changepoints=3))
    assert other.grid is not first.grid


def test_regressor_values_must_match_the_settings():
    stamps = pd.date_range("2022-01-01", periods=30, freq="D").to_numpy(dtype="datetime64[ns]").view(np.int64)
    settings = replace(BASE, regressors=(Regressor("temperature"),))
    with pytest.raises(ValueError, match="'temperature' missing"):
        prepare.prepare(stamps, np.arange(30.0), settings)
    with pytest.raises(ValueError, match="NaN in column 'temperature'"):
        prepare.prepare(stamps, np.arange(30.0), settings, {"temperature": np.full(30, np.nan)})
    with pytest.raises(ValueError, match="do not name"):
        prepare.prepare(stamps, np.arange(30.0), BASE, {"temperature": np.ones(30)})


def test_unsorted_or_uncovered_input_is_refused():
    stamps = pd.date_range("2022-01-01", periods=30, freq="D").to_numpy().view(np.int64)
    with pytest.raises(ValueError, match="sorted"):
        prepare.prepare(stamps[::-1], np.ones(30), BASE)
    with pytest.raises(prepare.NotCovered, match="one timestamp"):
        prepare.prepare(np.full(5, stamps[0]), np.arange(5.0), BASE)
