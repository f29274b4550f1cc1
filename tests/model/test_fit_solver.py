"""The exact solver and the engine around it, against stock Prophet (real Stan fits, no mocks)."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from prophet.serialize import model_from_json, model_to_json

from fleetcast.data.generate import customer_series
from fleetcast.model import prophet_model, seasonal_change
from fleetcast.model.fit import engine, solver
from fleetcast.model.fit.problem import FitParams, FitProblem
from fleetcast.model.settings import ProphetSettings

SETTINGS = ProphetSettings(uncertainty_samples=0)


def history(customer: int = 3, rows: int = 365) -> pd.DataFrame:
    grid = pd.date_range("2022-01-01", periods=rows, freq="D")
    stamps, values = customer_series(customer, 11, grid, rows)
    return pd.DataFrame({"ds": stamps, "y": values})


def stock_problem(frame: pd.DataFrame, settings: ProphetSettings = SETTINGS) -> FitProblem:
    model = prophet_model.new_prophet(settings)
    inputs = model.preprocess(frame)
    return FitProblem.from_model_inputs(inputs, model.calculate_initial_params(inputs.K))


def test_log_posterior_is_stans_objective():
    model = prophet_model.fit_prophet(history(), SETTINGS)
    ours = solver.log_posterior(stock_problem(history()), FitParams.from_prophet_params(model.params))
    # Stan's lp__ is written with 6 significant digits.
    assert ours == pytest.approx(float(model.params["lp__"][0, 0]), rel=2e-6)


def test_sigma_is_the_root_of_its_stationarity_equation():
    for rss, rows in [(0.3, 365), (1e-12, 60), (5e3, 9000)]:
        s = solver.sigma_given_rss(rss, rows)
        assert 4 * s**4 + rows * s**2 - rss == pytest.approx(0.0, abs=1e-12 * max(rss, 1.0))


def lasso_objective(hessian, b, lam, pen, x):
    return 0.5 * x @ hessian @ x - b @ x + lam * np.abs(x[pen]).sum()


@pytest.mark.parametrize("seed", range(5))
def test_lasso_active_set_is_the_minimum(seed: int):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(200, 30))
    z[:, 10:20] = np.cumsum(z[:, 10:20], axis=1)  # strongly correlated penalised columns, like deltas
    gram, b = z.T @ z, z.T @ rng.normal(size=200)
    ridge = np.where(np.arange(30) < 10, 0.5, 0.0)
    pen = (np.arange(30) >= 10) & (np.arange(30) < 25)
    lam = float(np.max(np.abs(b))) * 0.05
    x = solver.lasso_active_set(gram, b, ridge, lam, pen, np.zeros(30))
    hessian = gram + np.diag(ridge)
    best = lasso_objective(hessian, b, lam, pen, x)
    assert 0 < np.count_nonzero(x[pen]) < pen.sum()  # a real lasso: some deltas exactly zero
    for _ in range(200):
        probe = x + rng.normal(scale=1e-3, size=30) * rng.integers(0, 2, size=30)
        assert lasso_objective(hessian, b, lam, pen, probe) >= best - 1e-9


@pytest.mark.parametrize(
    "settings",
    [SETTINGS, replace(SETTINGS, seasonality_mode="multiplicative"), replace(SETTINGS, growth="flat")],
    ids=["additive", "multiplicative", "flat"],
)
def test_solver_beats_or_matches_stan(settings: ProphetSettings):
    frame = history(5)
    problem = stock_problem(frame, settings)
    ours = solver.solve(problem)
    stan = FitParams.from_prophet_params(prophet_model.fit_prophet(frame, settings).params)
    lp_ours, lp_stan = solver.log_posterior(problem, ours), solver.log_posterior(problem, stan)
    assert lp_ours >= lp_stan - 1e-6 * abs(lp_stan)
    if settings.growth == "flat":
        assert ours.k == 0.0 and not ours.delta.any()


def test_the_weekly_change_fit_beats_or_matches_stan():
    """The weekly-change candidate's problem: a series of differences around zero, flat growth."""
    frame = history(7)
    change_ds, change = seasonal_change.changes(frame["ds"].to_numpy(dtype="datetime64[ns]"), frame["y"])
    changes = pd.DataFrame({"ds": change_ds, "y": change})
    settings = seasonal_change.part_settings(SETTINGS)
    problem = stock_problem(changes, settings)
    ours = solver.solve(problem)
    stan = FitParams.from_prophet_params(prophet_model.fit_prophet(changes, settings).params)
    lp_ours, lp_stan = solver.log_posterior(problem, ours), solver.log_posterior(problem, stan)
    assert lp_ours >= lp_stan - 1e-6 * abs(lp_stan)


def test_logistic_is_not_covered():
    problem = stock_problem(history())
    with pytest.raises(solver.NotCovered):
        solver.solve(replace(problem, trend_indicator=1))


def test_stan_engine_is_stock_prophet():
    frame = history(2)
    ours = engine.fit(frame, SETTINGS, engine.STAN)
    stock = prophet_model.fit_prophet(frame, SETTINGS)
    assert ours.engine_used == engine.STAN and ours.problem is None
    assert ours.to_json() == model_to_json(stock)


@pytest.mark.parametrize("mode", ["additive", "multiplicative"])
def test_artifact_is_stock_prophet_and_predicts_what_we_serve(mode: str):
    frame = history(4)
    outcome = engine.fit(frame, replace(SETTINGS, seasonality_mode=mode))
    assert outcome.engine_used == engine.EXACT
    loaded = model_from_json(outcome.to_json())
    future = pd.Series(pd.date_range(frame["ds"].iloc[-1], periods=15, freq="D")[1:])
    stock = prophet_model.predict_values(loaded, future)
    np.testing.assert_allclose(engine.forecast_values(outcome, future), stock, rtol=1e-12)
    assert list(loaded.params) == ["lp__", "k", "m", "delta", "sigma_obs", "beta", "trend"]


def test_constant_series_follows_prophets_rule():
    frame = history().assign(y=42.0)
    outcome = engine.fit(frame, SETTINGS)
    assert outcome.engine_used == engine.EXACT
    assert outcome.to_json() == model_to_json(prophet_model.fit_prophet(frame, SETTINGS))


def test_no_changepoints_folds_delta_into_k():
    frame = history(6)
    settings = replace(SETTINGS, n_changepoints=0)
    outcome = engine.fit(frame, settings)
    stock = prophet_model.fit_prophet(frame, settings)
    assert outcome.model.params["delta"].shape == stock.params["delta"].shape == (1, 1)
    assert outcome.model.params["delta"][0, 0] == 0.0
    assert outcome.model.params["k"][0, 0] == pytest.approx(stock.params["k"][0, 0], rel=1e-3)


def test_uncovered_growth_falls_back_to_stan_loudly(caplog: pytest.LogCaptureFixture):
    frame = history(1).assign(cap=1000.0)
    with caplog.at_level(logging.WARNING, logger=engine.__name__):
        outcome = engine.fit(frame, replace(SETTINGS, growth="logistic"), label="customer-1")
    assert outcome.engine_used == engine.STAN
    assert "NotCovered" in outcome.fallback_reason
    assert any("fell back to Stan for customer-1" in r.getMessage() for r in caplog.records)


def test_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="not one of auto, stan"):
        engine.fit(history(), SETTINGS, "fast")


def test_non_finite_data_is_refused_not_approximated():
    problem = stock_problem(history())
    y = problem.y.copy()
    y[10] = np.nan
    with pytest.raises(solver.NotCovered, match="non-finite"):
        solver.solve(replace(problem, y=y))


@pytest.mark.parametrize("mode", ["additive", "multiplicative"])
def test_warm_start_from_the_holdout_fit_reaches_the_same_optimum(mode: str):
    settings = replace(SETTINGS, seasonality_mode=mode)
    frame = history(8)
    holdout = engine.fit(frame.iloc[:-7], settings)
    cold = engine.fit(frame, settings)
    warm = engine.fit(frame, settings, warm_start=holdout)
    assert warm.engine_used == cold.engine_used == engine.EXACT
    lp_cold = solver.log_posterior(cold.problem, cold.params)
    assert solver.log_posterior(warm.problem, warm.params) == pytest.approx(lp_cold, rel=1e-10)
    np.testing.assert_allclose(warm.params.beta, cold.params.beta, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("prior_scale", [0.001, 0.01, 0.05, 0.5])
def test_the_noise_scale_settles_across_prior_scales(prior_scale: float):
    # The accelerated sigma iteration once cycled on some series at changepoint_prior_scale=0.01.
    from fleetcast.model.fit import prepare

    settings = replace(SETTINGS, changepoint_prior_scale=prior_scale)
    grid = pd.date_range("2022-01-01", periods=365, freq="D")
    for customer in range(60):
        stamps, values = customer_series(customer, 42, grid, 365)  # a year, less a week's holdout
        ds = stamps.to_numpy(dtype="datetime64[ns]").view(np.int64)[:-7]
        prepared = prepare.prepare(ds, np.round(values, 3)[:-7], settings)
        params = solver.solve(prepared.problem)  # raises NotConverged if it did not settle
        assert params.sigma_obs > 0
