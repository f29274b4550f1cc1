"""Holdout scoring: how well a customer's model forecasts its last days, against a seasonal-naive baseline.

The baseline repeats the value observed one week earlier (whole weeks back, so it only uses training
data), the usual yardstick for weekly-seasonal energy data: a model that cannot beat it is not worth much.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SEASON = pd.Timedelta(days=7)


@dataclass(frozen=True)
class HoldoutSplit:
    train: pd.DataFrame
    holdout: pd.DataFrame


def split_holdout(history: pd.DataFrame, holdout_days: int) -> HoldoutSplit:
    cutoff = history["ds"].iloc[-1] - pd.Timedelta(days=holdout_days)
    in_train = history["ds"] <= cutoff
    return HoldoutSplit(train=history[in_train], holdout=history[~in_train])


def mae(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.mean(np.abs(actual - forecast)))


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Symmetric MAPE in percent (0..200); a pair of zeros counts as a perfect forecast."""
    denominator = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(
        2.0 * np.abs(actual - forecast), denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    return float(100.0 * np.mean(ratio))


def seasonal_naive(train: pd.DataFrame, dates: pd.Series) -> np.ndarray:
    """For each date, the last training value at or before the same time whole weeks earlier."""
    stamps = train["ds"].to_numpy(dtype="datetime64[ns]").astype(np.int64)  # sorted ascending
    values = train["y"].to_numpy(dtype=np.float64)
    wanted = pd.to_datetime(dates).to_numpy(dtype="datetime64[ns]").astype(np.int64)
    season = SEASON.value
    # ceil((date - last) / season), at least one whole season back, in exact integer nanoseconds
    weeks_back = np.maximum(-((stamps[-1] - wanted) // season), 1)
    position = np.searchsorted(stamps, wanted - weeks_back * season, side="right") - 1
    # Before the first observation there is nothing to repeat; fall back to the first value.
    return np.where(position >= 0, values[np.maximum(position, 0)], values[0])


def holdout_metrics(actual: np.ndarray, forecast: np.ndarray, naive: np.ndarray) -> dict[str, float | int]:
    return {
        "holdout_rows": len(actual),
        "mae": round(mae(actual, forecast), 6),
        "smape": round(smape(actual, forecast), 6),
        "naive_mae": round(mae(actual, naive), 6),
        "naive_smape": round(smape(actual, naive), 6),
    }
