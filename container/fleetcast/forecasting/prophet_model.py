"""Prophet fitting and forecasting: the only module that builds a Prophet model.

Fitting lives apart from the fleet loop and the artifact format; serving uses `future_frame` so that a
forecast only ever covers dates after the last observation (never the whole history).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fleetcast.logs import quiet_third_party

if TYPE_CHECKING:
    from prophet import Prophet

    from fleetcast.training.config import ProphetSettings


def _prophet_class() -> type[Prophet]:
    quiet_third_party()
    from prophet import Prophet

    quiet_third_party()  # prophet adds handlers on import; re-quiet after
    return Prophet


def fit_prophet(history: pd.DataFrame, settings: ProphetSettings) -> Prophet:
    """Fit one model on a frame with columns `ds` (datetime64) and `y` (float)."""
    model = _prophet_class()(**settings.prophet_kwargs())
    model.fit(history)
    return model


def predict_values(model: Prophet, dates: pd.DatetimeIndex | pd.Series) -> np.ndarray:
    """Point forecasts (`yhat`) for the given dates, without the cost of uncertainty sampling."""
    samples = model.uncertainty_samples
    model.uncertainty_samples = 0
    try:
        return model.predict(pd.DataFrame({"ds": pd.to_datetime(dates)}))["yhat"].to_numpy()
    finally:
        model.uncertainty_samples = samples


def infer_frequency(ds: pd.Series) -> str:
    """The observation frequency as a pandas alias ('D', 'h', '30min', ...), for forecasting ahead."""
    unique = pd.DatetimeIndex(ds.drop_duplicates().sort_values())
    if len(unique) >= 3:
        with pd.option_context("future.infer_freq_returns_offset", True):
            inferred = pd.infer_freq(unique[-min(len(unique), 64) :])
        if inferred is not None:
            return inferred.freqstr
    if len(unique) < 2:
        return "D"
    step = pd.Series(unique).diff().dropna().median()
    day = pd.Timedelta(days=1)
    if step >= day and step % day == pd.Timedelta(0):
        # pandas spells a whole-day Timedelta as hours ("24h"); gappy daily data is still daily.
        days = step // day
        return "D" if days == 1 else f"{days}D"
    return pd.tseries.frequencies.to_offset(step).freqstr


def future_frame(last_observation: pd.Timestamp, periods: int, freq: str) -> pd.DataFrame:
    """`periods` dates strictly after the last observation, on the model's frequency grid."""
    dates = pd.date_range(start=last_observation, periods=periods + 1, freq=freq)
    dates = dates[dates > last_observation][:periods]
    return pd.DataFrame({"ds": dates})


def model_to_json(model: Prophet) -> str:
    from prophet.serialize import model_to_json as to_json

    return to_json(model)


def model_from_json(text: str) -> Prophet:
    _prophet_class()
    from prophet.serialize import model_from_json as from_json

    return from_json(text)


logging.getLogger(__name__).addHandler(logging.NullHandler())
