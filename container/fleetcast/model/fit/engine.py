"""One entry point for fitting a customer's model: the exact in-process solver where covered, else Stan.

`fit_series(ds, y, settings, engine)` returns a `FitOutcome` whose `to_json()` is ordinary Prophet JSON
either way. `engine="stan"` is stock `Prophet.fit` unchanged. `engine="auto"` prepares Prophet's Stan
data in numpy (`prepare`, bit for bit what `Prophet.preprocess` builds), solves it in process
(`solver.solve`) and writes the model as `prophet.serialize.model_to_json` would (`prophet_json`), with
no Prophet object and no pandas on the way. Anything the solver does not cover or cannot certify is
refit by Stan with a WARNING saying why.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fleetcast.model import prophet_model
from fleetcast.model.conditions import condition_values
from fleetcast.model.fit import prepare, prophet_json, solver
from fleetcast.model.fit.problem import FLAT, FitParams, FitProblem

if TYPE_CHECKING:
    from prophet import Prophet

    from fleetcast.model.settings import ProphetSettings

log = logging.getLogger(__name__)

AUTO, STAN = "auto", "stan"
ENGINES = (AUTO, STAN)
EXACT = "exact"  # what metadata.json and the report call the in-process engine
CONSTANT_SIGMA = 1e-9  # Prophet's sigma_obs for a constant series


@dataclass
class FitOutcome:
    engine_used: str  # EXACT or STAN
    fallback_reason: str = ""  # why auto went to Stan, "" otherwise
    state: prophet_json.FittedState | None = None  # the fitted model (in-process path)
    prepared: prepare.Prepared | None = None  # the Stan data it was fitted on (in-process path)
    params: FitParams | None = None  # the solution in the Stan data's scale (in-process path)
    stan_model: Prophet | None = None  # the fitted stock model (Stan path)

    @property
    def problem(self) -> FitProblem | None:
        return None if self.prepared is None else self.prepared.problem

    @cached_property
    def model(self) -> Prophet:
        """The fitted stock Prophet object (loaded from the JSON on the in-process path)."""
        if self.stan_model is not None:
            return self.stan_model
        return prophet_model.model_from_json(self.to_json())

    def to_json(self) -> str:
        if self.state is not None:
            return prophet_json.to_json(self.state)
        return prophet_json.model_to_json(self.model)


def fit(history: pd.DataFrame, settings: ProphetSettings, engine: str = AUTO, **options) -> FitOutcome:
    """`fit_series` on a frame as `Prophet.fit` takes it; Stan gets the whole frame (e.g. a `cap`)."""
    ds = history["ds"].to_numpy(dtype="datetime64[ns]")
    regressors = {
        name: history[name].to_numpy() for name in history.columns if name in settings.regressor_names
    }
    return fit_series(
        ds,
        history["y"].to_numpy(dtype=np.float64),
        settings,
        engine,
        frame=history,
        regressors=regressors,
        **options,
    )


def fit_series(
    ds: np.ndarray,
    y: np.ndarray,
    settings: ProphetSettings,
    engine: str = AUTO,
    *,
    warm_start: FitOutcome | None = None,
    label: str = "",
    frame: pd.DataFrame | None = None,
    regressors: dict[str, np.ndarray] | None = None,
) -> FitOutcome:
    """Fit one model on timestamps (datetime64[ns]) and values; NaN values are left out as Prophet does.

    `regressors` holds each regressor the settings name, row for row. `warm_start`, a previous outcome
    on (most of) the same data, seeds the solver's noise scale; the answer is the certified optimum
    either way. `label` names the series in fallback log lines. `frame`, the same rows with any other
    columns Prophet reads, is what Stan fits when the engine falls back.
    """
    ds = np.asarray(ds, dtype="datetime64[ns]")
    y = np.asarray(y, dtype=np.float64)
    regressors = dict(regressors or {})
    if engine not in ENGINES:
        raise ValueError(f"fit engine {engine!r} is not one of {', '.join(ENGINES)}")
    if engine == STAN:
        stan_frame = _stan_frame(ds, y, frame, regressors)
        return FitOutcome(STAN, stan_model=prophet_model.fit_prophet(stan_frame, settings))
    try:
        known = {"ds", "y", *settings.regressor_names}
        extra = sorted(set(frame.columns) - known) if frame is not None else []
        if extra:
            raise solver.NotCovered(f"columns besides ds, y and the regressors: {extra}")
        columns = list(frame.columns) if frame is not None else ["ds", "y", *regressors]
        return _fit_in_process(ds, y, settings, warm_start, regressors, columns)
    except (solver.NotCovered, solver.NotConverged, prophet_json.NotExact) as exc:
        reason = f"{type(exc).__name__}: {exc}"
    log.warning("fit engine fell back to Stan%s: %s", f" for {label}" if label else "", reason)
    stan_frame = _stan_frame(ds, y, frame, regressors)
    return FitOutcome(STAN, reason, stan_model=prophet_model.fit_prophet(stan_frame, settings))


def _stan_frame(
    ds: np.ndarray, y: np.ndarray, frame: pd.DataFrame | None, regressors: dict[str, np.ndarray]
) -> pd.DataFrame:
    return pd.DataFrame({"ds": ds, "y": y, **regressors}) if frame is None else frame


def _fit_in_process(
    ds: np.ndarray,
    y: np.ndarray,
    settings: ProphetSettings,
    warm_start: FitOutcome | None,
    regressors: dict[str, np.ndarray],
    columns: list[str],
) -> FitOutcome:
    if np.any(ds[1:] < ds[:-1]):
        raise solver.NotCovered("unsorted timestamps (Prophet keeps their original row labels)")
    if np.isnat(ds).any():
        raise ValueError("Found NaN in column ds.")
    if np.isinf(y).any():
        raise ValueError("Found infinity in column y.")
    observed = ~np.isnan(y)
    history_dates = _unique_sorted(ds)  # Prophet keeps the dates of NaN rows here
    regressors = {name: np.asarray(values, dtype=np.float64) for name, values in regressors.items()}
    if not observed.all():
        ds, y = ds[observed], y[observed]
        regressors = {name: values[observed] for name, values in regressors.items()}
    prepared = prepare.prepare(ds.view(np.int64), y, settings, regressors)
    problem = prepared.problem
    if prepared.constant:
        # Prophet's constant-series rule: the initial values, a vanishing noise scale, no optimisation.
        init = problem.init
        params = FitParams(init.k, init.m, init.delta, init.beta, CONSTANT_SIGMA)
        stored = OrderedDict(
            (name, np.array(value).reshape((1, -1)))
            for name, value in (
                ("k", init.k),
                ("m", init.m),
                ("delta", init.delta),
                ("beta", init.beta),
                ("sigma_obs", CONSTANT_SIGMA),
            )
        )
    else:
        params = solver.solve(problem, start=_rescaled_start(warm_start, prepared))
        stored = _stan_shaped(problem, params)
    if len(prepared.grid.changepoints_ns) == 0:
        # As Prophet.fit: without requested changepoints, fold the dummy delta into the base rate k.
        stored["k"] = stored["k"] + stored["delta"].reshape(-1)
        stored["delta"] = np.zeros(stored["delta"].shape).reshape((-1, 1))
    state = _fitted_state(prepared, ds, history_dates, settings, stored, columns)
    return FitOutcome(EXACT, state=state, prepared=prepared, params=params)


def _unique_sorted(ds: np.ndarray) -> np.ndarray:
    if len(ds) < 2 or np.all(ds[1:] > ds[:-1]):
        return ds
    return np.unique(ds)


def _fitted_state(
    prepared: prepare.Prepared,
    ds: np.ndarray,
    history_dates: np.ndarray,
    settings: ProphetSettings,
    params: OrderedDict[str, np.ndarray],
    columns: list[str],
) -> prophet_json.FittedState:
    """The fitted model exactly as a stock Prophet object would hold it after `fit`."""
    grid = prepared.grid
    components = grid.component_columns()
    # Prophet's history keeps the frame's columns, then the condition columns fit_prophet appends.
    conditions = {
        name: condition_values(name, ds.view(np.int64))
        for name in dict.fromkeys(props["condition_name"] for props in grid.seasonalities.values())
        if name is not None
    }
    inputs = {"ds": ds, "y": prepared.y, **prepared.regressor_values}
    extra_regressors: OrderedDict[str, dict] = OrderedDict()
    for regressor, mode in zip(settings.regressors, grid.regressor_modes, strict=True):
        mu, std = prepared.regressor_scales[regressor.name]
        extra_regressors[regressor.name] = {
            "prior_scale": float(settings.regressor_prior_scale),
            "standardize": "auto",
            "mu": mu,
            "std": std,
            "mode": mode,
            "predictor_spec": None,
            "predictor": None,
        }
    return prophet_json.FittedState(
        growth=settings.growth,
        n_changepoints=grid.n_changepoints,
        specified_changepoints=False,
        changepoint_range=settings.changepoint_range,
        yearly_seasonality=settings.yearly_seasonality,
        weekly_seasonality=settings.weekly_seasonality,
        daily_seasonality=settings.constructor_kwargs()["daily_seasonality"],
        seasonality_mode=settings.seasonality_mode,
        seasonality_prior_scale=float(settings.seasonality_prior_scale),
        changepoint_prior_scale=float(settings.changepoint_prior_scale),
        holidays_prior_scale=float(settings.holidays_prior_scale),
        mcmc_samples=0,
        interval_width=settings.interval_width,
        uncertainty_samples=settings.uncertainty_samples,
        y_scale=prepared.y_scale,
        y_min=0.0,
        scaling="absmax",
        logistic_floor=False,
        country_holidays=settings.country_holidays,
        component_modes=grid.component_modes,
        holidays_mode=settings.seasonality_mode,
        start=pd.Timestamp(grid.start_ns).timestamp(),
        t_scale=pd.Timedelta(grid.t_scale_ns).total_seconds(),
        changepoints=grid.changepoints_ns.view("datetime64[ns]"),
        changepoints_index=grid.changepoint_rows,
        history_dates=history_dates,
        history={
            # the input's columns in its order (Prophet keeps the frame's), then what setup_dataframe adds
            **{name: inputs[name] for name in columns},
            **conditions,
            "floor": np.zeros(len(ds)),
            "t": grid.t,
            "y_scaled": prepared.problem.y,
        },
        component_cols=np.column_stack(list(components.values())),
        component_names=list(components),
        changepoints_t=grid.changepoints_t,
        seasonalities=grid.seasonalities,
        extra_regressors=extra_regressors,
        fit_kwargs={},
        params=params,
        train_holiday_names=None if grid.holiday_names is None else list(grid.holiday_names),
    )


def _rescaled_start(warm_start: FitOutcome | None, prepared: prepare.Prepared) -> FitParams | None:
    """A previous fit's solution expressed in this fit's y and t scales (same start date assumed)."""
    if warm_start is None or warm_start.prepared is None or warm_start.params is None:
        return None
    if warm_start.params.sigma_obs <= CONSTANT_SIGMA:
        return None
    previous, before = warm_start.params, warm_start.prepared
    y_ratio = before.y_scale / prepared.y_scale
    t_ratio = prepared.grid.t_scale_ns / before.grid.t_scale_ns
    # Additive beta is in y units; multiplicative beta is relative and keeps its value.
    additive = before.problem.s_a
    beta_ratio = np.where(additive != 0, y_ratio, 1.0)
    return FitParams(
        k=previous.k * y_ratio * t_ratio,
        m=previous.m * y_ratio,
        delta=previous.delta * y_ratio * t_ratio,
        beta=previous.beta * beta_ratio,
        sigma_obs=previous.sigma_obs * y_ratio,
    )


def _stan_shaped(problem: FitProblem, params: FitParams) -> OrderedDict[str, np.ndarray]:
    """`model.params` as Prophet's CmdStan backend stores a MAP fit: Stan's columns, each (1, n)."""
    theta = np.concatenate(([params.k, params.m], params.delta))
    if problem.trend_indicator == FLAT:
        trend = np.full(len(problem.t), params.m)
    else:
        trend = solver.trend_columns(problem) @ theta
    values = (
        ("lp__", solver.log_posterior(problem, params)),
        ("k", params.k),
        ("m", params.m),
        ("delta", params.delta),
        ("sigma_obs", params.sigma_obs),
        ("beta", params.beta),
        ("trend", trend),
    )
    return OrderedDict((name, np.array(value, dtype=float).reshape((1, -1))) for name, value in values)


def forecast_values(
    outcome: FitOutcome, dates: np.ndarray | pd.Series, regressors: dict[str, np.ndarray] | None = None
) -> np.ndarray:
    """Point forecasts for `dates` from a fitted outcome, exactly as stock predict, without its cost.

    `regressors` holds each regressor's values at `dates`. Uses the compiled numpy predictor where it
    reproduces Prophet; anything else goes through Prophet's own predict.
    """
    from fleetcast.model.compiled import NotCompilable, compile_model, compile_state

    regressors = {name: np.asarray(values, dtype=np.float64) for name, values in (regressors or {}).items()}
    try:
        compiled = compile_state(outcome.state) if outcome.state is not None else compile_model(outcome.model)
    except NotCompilable:
        return prophet_model.predict_values(outcome.model, pd.Series(dates), regressors)
    ds = np.asarray(dates, dtype="datetime64[ns]")
    order = np.argsort(ds, kind="mergesort")
    predicted = np.empty(len(ds))
    ordered = {name: values[order] for name, values in regressors.items()}
    predicted[order] = compiled.predict(ds[order], intervals=False, regressors=ordered).yhat
    return predicted


def compiled_form(outcome: FitOutcome, model_json: str) -> dict[str, Any] | None:
    """The compiled predictor's numbers for the model.json this outcome is written as (the archive's
    compiled.json), or None when the compiled form does not cover the model.

    From the engine's state when there is one (~5x cheaper than parsing model.json again, and equal to it:
    tests/serving/test_compiled_archive.py); from model.json itself after a Stan fit.
    """
    from fleetcast.model.compiled import NotCompilable, compile_model_json, compile_state

    try:
        if outcome.state is not None:
            compiled = compile_state(outcome.state)
        else:
            compiled = compile_model_json(model_json)
    except NotCompilable:
        return None
    return compiled.to_dict()
