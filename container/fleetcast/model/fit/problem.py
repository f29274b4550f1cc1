"""The shared language of the fit engine: Prophet's Stan data and parameters, as numpy.

`FitProblem` is exactly what stock Prophet hands Stan (`prophet.models.ModelInputData` plus the initial
values of `calculate_initial_params`); `FitParams` is what Stan hands back. Preparation (numpy features),
the solvers and the JSON writer meet here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

LINEAR, LOGISTIC, FLAT = 0, 1, 2  # Prophet's trend_indicator


@dataclass
class FitParams:
    k: float
    m: float
    delta: np.ndarray  # (S,)
    beta: np.ndarray  # (K,)
    sigma_obs: float

    @classmethod
    def from_prophet_params(cls, params: dict[str, Any]) -> FitParams:
        return cls(
            k=float(np.ravel(params["k"])[0]),
            m=float(np.ravel(params["m"])[0]),
            delta=np.ravel(np.asarray(params["delta"], dtype=float)),
            beta=np.ravel(np.asarray(params["beta"], dtype=float)),
            sigma_obs=float(np.ravel(params["sigma_obs"])[0]),
        )


@dataclass(frozen=True)
class FitProblem:
    """Prophet's Stan data as numpy arrays (T rows, K features, S changepoints)."""

    t: np.ndarray  # (T,) time scaled to [0, 1]
    y: np.ndarray  # (T,) y scaled by y_scale
    cap: np.ndarray  # (T,)
    X: np.ndarray  # (T, K) seasonality / regressor features
    sigmas: np.ndarray  # (K,) prior scales of beta
    s_a: np.ndarray  # (K,) 1 where the feature is additive
    s_m: np.ndarray  # (K,) 1 where the feature is multiplicative
    t_change: np.ndarray  # (S,) changepoints on the t scale
    tau: float  # changepoint prior scale
    trend_indicator: int  # LINEAR, LOGISTIC or FLAT
    init: FitParams  # Prophet's calculate_initial_params
    # Derived arrays that depend only on t, X and the changepoints, memoised by the solver. Problems
    # prepared on the same grid share one dict, so customers on the same timestamps share their Gram.
    shared: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_model_inputs(cls, inputs: Any, init: Any) -> FitProblem:
        """From stock Prophet's `preprocess(df)` and `calculate_initial_params(K)` (the reference path)."""

        def vector(values: Any) -> np.ndarray:
            return np.asarray(values, dtype=float).reshape(-1)

        return cls(
            t=vector(inputs.t),
            y=vector(inputs.y),
            cap=vector(inputs.cap),
            X=np.asarray(inputs.X, dtype=float).reshape(int(inputs.T), int(inputs.K)),
            sigmas=vector(inputs.sigmas),
            s_a=vector(inputs.s_a),
            s_m=vector(inputs.s_m),
            t_change=vector(inputs.t_change),
            tau=float(inputs.tau),
            trend_indicator=int(inputs.trend_indicator),
            init=FitParams(
                k=float(init.k),
                m=float(init.m),
                delta=vector(init.delta),
                beta=vector(init.beta),
                sigma_obs=float(init.sigma_obs),
            ),
        )
