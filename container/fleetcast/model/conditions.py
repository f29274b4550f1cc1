"""Seasonality conditions fleetcast computes from the timestamp, so no input column is ever needed.

Prophet's conditional seasonality (`add_seasonality(..., condition_name=...)`) is active only on rows whose
boolean condition column is true; stock Prophet reads that column from the frame it fits and predicts.
Load curves differ between working days and weekends, so `daily_by_day_type` gives a model two daily
seasonalities instead of one: `daily_weekday` (condition `weekday`, Monday to Friday) and `daily_weekend`
(condition `weekend`, Saturday and Sunday). The columns are a function of `ds` alone, defined here once:
the fit engine, the Stan fallback, the compiled predictor and anything that hands a frame to stock
Prophet all compute them through `condition_values` / `add_condition_columns`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from fleetcast.model.settings import ProphetSettings

NS_PER_DAY = 86_400 * 1_000_000_000
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0, as pandas numbers weekdays)
WEEKDAY, WEEKEND = "weekday", "weekend"
CONDITIONS = (WEEKDAY, WEEKEND)
DAILY_PERIOD = 1  # days; an int, as Prophet's own daily seasonality has it (model.json writes "1")
DAILY_ORDER = 4  # Prophet's default daily Fourier order


def condition_values(name: str, ds_ns: np.ndarray) -> np.ndarray:
    """The boolean condition column `name` for timestamps (int64 nanoseconds); KeyError if not ours."""
    if name not in CONDITIONS:
        raise KeyError(name)
    weekday = (np.floor_divide(np.asarray(ds_ns, dtype=np.int64), NS_PER_DAY) + EPOCH_WEEKDAY) % 7
    weekend = weekday >= 5
    return weekend if name == WEEKEND else ~weekend


def conditional_seasonalities(settings: ProphetSettings) -> list[dict[str, Any]]:
    """The `add_seasonality` arguments of the settings' conditional seasonalities, in the order added.

    Prior scale and mode are left to Prophet's defaults (the model's seasonality_prior_scale and mode).
    """
    if not settings.daily_by_day_type:
        return []
    daily = settings.daily_seasonality
    order = daily if isinstance(daily, int) and not isinstance(daily, bool) else DAILY_ORDER
    return [
        {
            "name": f"daily_{condition}",
            "period": DAILY_PERIOD,
            "fourier_order": order,
            "condition_name": condition,
        }
        for condition in CONDITIONS
    ]


def add_condition_columns(frame: pd.DataFrame, seasonalities: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """`frame` with the condition columns the seasonalities need (computed from `ds`) added, if missing."""
    needed = [props.get("condition_name") for props in seasonalities.values()]
    missing = [name for name in dict.fromkeys(needed) if name in CONDITIONS and name not in frame]
    if not missing:
        return frame
    ds_ns = frame["ds"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    return frame.assign(**{name: condition_values(name, ds_ns) for name in missing})
