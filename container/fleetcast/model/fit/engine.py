"""One entry point for fitting a customer's model: the exact in-process solver where covered, else Stan.

`fit(history, settings, engine)` returns a stock, fitted `Prophet` object either way, so the artifact is
always ordinary Prophet JSON. `engine="stan"` is stock `Prophet.fit` unchanged. `engine="auto"` prepares
Prophet's Stan data, solves it in process (`solver.solve`) and stores the parameters where `Prophet.fit`
would; anything the solver does not cover or cannot certify is refit by Stan with a WARNING saying why.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fleetcast.model import prophet_model
from fleetcast.model.fit import solver
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
    model: Prophet  # fitted, stock
    engine_used: str  # EXACT or STAN
    fallback_reason: str = ""  # why auto went to Stan, "" otherwise
    problem: FitProblem | None = None  # the Stan data (in-process path only)
    params: FitParams | None = None  # the solution in FitProblem's scale (in-process path only)

    def to_json(self) -> str:
        return prophet_model.model_to_json(self.model)


def fit(
    history: pd.DataFrame,
    settings: ProphetSettings,
    engine: str = AUTO,
    *,
    warm_start: FitOutcome | None = None,
    label: str = "",
) -> FitOutcome:
    """Fit one model on a frame with `ds` (datetime64) and `y` (float).

    `warm_start`, a previous outcome on (most of) the same data, seeds the solver's noise scale; the
    answer is the certified optimum either way. `label` names the series in fallback log lines.
    """
    if engine not in ENGINES:
        raise ValueError(f"fit engine {engine!r} is not one of {', '.join(ENGINES)}")
    if engine == STAN:
        return FitOutcome(prophet_model.fit_prophet(history, settings), STAN)
    try:
        return _fit_in_process(history, settings, warm_start)
    except (solver.NotCovered, solver.NotConverged) as exc:
        reason = f"{type(exc).__name__}: {exc}"
    log.warning("fit engine fell back to Stan%s: %s", f" for {label}" if label else "", reason)
    return FitOutcome(prophet_model.fit_prophet(history, settings), STAN, fallback_reason=reason)


def _fit_in_process(
    history: pd.DataFrame, settings: ProphetSettings, warm_start: FitOutcome | None
) -> FitOutcome:
    if settings.growth not in ("linear", "flat"):
        raise solver.NotCovered(f"growth={settings.growth!r}")
    model = prophet_model.new_prophet(settings)
    inputs = model.preprocess(history)
    model._fit_regressor_models(history)
    problem = FitProblem.from_model_inputs(inputs, model.calculate_initial_params(inputs.K))

    if float(np.min(model.history["y"])) == float(np.max(model.history["y"])):
        # Prophet's constant-series rule: the initial values, a vanishing noise scale, no Stan call.
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
        params = solver.solve(problem, start=_rescaled_start(warm_start, model))
        stored = _stan_shaped(problem, params)
    model.params = stored
    model.stan_fit = None
    if len(model.changepoints) == 0:
        # As Prophet.fit: without requested changepoints, fold the dummy delta into the base rate k.
        model.params["k"] = model.params["k"] + model.params["delta"].reshape(-1)
        model.params["delta"] = np.zeros(model.params["delta"].shape).reshape((-1, 1))
    return FitOutcome(model, EXACT, problem=problem, params=params)


def _rescaled_start(warm_start: FitOutcome | None, model: Prophet) -> FitParams | None:
    """A previous fit's solution expressed in this fit's y and t scales (same start date assumed)."""
    if warm_start is None or warm_start.params is None or warm_start.params.sigma_obs <= CONSTANT_SIGMA:
        return None
    previous = warm_start.params
    y_ratio = float(warm_start.model.y_scale) / float(model.y_scale)
    t_ratio = float(model.t_scale / warm_start.model.t_scale)
    # Additive beta is in y units; multiplicative beta is relative and keeps its value.
    additive = np.asarray(warm_start.problem.s_a if warm_start.problem is not None else 1.0)
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


def forecast_values(outcome: FitOutcome, dates: pd.Series) -> np.ndarray:
    """Point forecasts for `dates` from a fitted outcome, exactly as stock predict, without its cost.

    Uses the compiled numpy predictor where it reproduces Prophet (linear/flat, Fourier seasonalities);
    anything else goes through Prophet's own predict.
    """
    from fleetcast.model.compiled import NotCompilable, compile_model

    try:
        compiled = compile_model(outcome.model)
    except NotCompilable:
        return prophet_model.predict_values(outcome.model, dates)
    ds = pd.to_datetime(dates).to_numpy(dtype="datetime64[ns]")
    order = np.argsort(ds, kind="mergesort")
    predicted = np.empty(len(ds))
    predicted[order] = compiled.predict(ds[order], intervals=False).yhat
    return predicted
