"""Stock Prophet: the only module that imports the `prophet` class, fits through Stan and (de)serialises.

The in-process fit engine (`fleetcast.model.fit`) produces the same stock Prophet objects; this module is
its reference and its fallback.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fleetcast.logs import quiet_third_party
from fleetcast.model.conditions import add_condition_columns, conditional_seasonalities

if TYPE_CHECKING:
    from prophet import Prophet

    from fleetcast.model.settings import ProphetSettings


def _prophet_class() -> type[Prophet]:
    quiet_third_party()
    from prophet import Prophet

    quiet_third_party()  # prophet adds handlers on import; re-quiet after
    return Prophet


def new_prophet(settings: ProphetSettings) -> Prophet:
    """An unfitted stock Prophet configured by `settings`: its conditional seasonalities, holidays and
    regressors added."""
    model = _prophet_class()(**settings.constructor_kwargs())
    for seasonality in conditional_seasonalities(settings):
        model.add_seasonality(**seasonality)
    if settings.country_holidays is not None:
        model.add_country_holidays(settings.country_holidays)
    for regressor in settings.regressors:
        model.add_regressor(
            regressor.name, prior_scale=float(settings.regressor_prior_scale), mode=regressor.mode
        )
    return model


def fit_prophet(history: pd.DataFrame, settings: ProphetSettings) -> Prophet:
    """Fit one model on a frame with columns `ds` (datetime64) and `y` (float); condition columns the
    settings need are computed from `ds` (model/conditions.py) and placed after `y`."""
    model = new_prophet(settings)
    model.fit(add_condition_columns(history, model.seasonalities))
    return model


def predict_values(
    model: Prophet, dates: pd.DatetimeIndex | pd.Series, regressors: dict[str, np.ndarray] | None = None
) -> np.ndarray:
    """Point forecasts (`yhat`) for the given dates (and regressor values at them), without the cost of
    uncertainty sampling."""
    samples = model.uncertainty_samples
    model.uncertainty_samples = 0
    frame = pd.DataFrame({"ds": pd.to_datetime(dates).to_numpy(), **(regressors or {})})
    try:
        return model.predict(add_condition_columns(frame, model.seasonalities))["yhat"].to_numpy()
    finally:
        model.uncertainty_samples = samples


def model_to_json(model: Prophet) -> str:
    from prophet.serialize import model_to_json as to_json

    return to_json(model)


def model_from_json(text: str) -> Prophet:
    _prophet_class()
    from prophet.serialize import model_from_json as from_json

    return from_json(text)


logging.getLogger(__name__).addHandler(logging.NullHandler())
