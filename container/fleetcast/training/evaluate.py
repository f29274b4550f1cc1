"""Holdout scoring: how well a customer's model forecasts its last days, against a seasonal-naive baseline.

The baseline repeats the value observed one week earlier (whole weeks back, so it only uses training
data), the usual yardstick for weekly-seasonal energy data: a model that cannot beat it is not worth much.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fleetcast.model import baseline
from fleetcast.training.inputs import History

DAY = np.timedelta64(1, "D")


@dataclass(frozen=True)
class HoldoutSplit:
    train: History
    holdout: History


def split_holdout(history: History, holdout_days: int) -> HoldoutSplit:
    """The last `holdout_days` days (after the cutoff, which is that long before the last row) held out."""
    cutoff = history.ds[-1] - holdout_days * DAY
    end = int(np.searchsorted(history.ds, cutoff, side="right"))  # rows are sorted
    return HoldoutSplit(train=history.window(0, end), holdout=history.window(end, len(history)))


def mae(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.mean(np.abs(actual - forecast)))


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Symmetric MAPE in percent (0..200); a pair of zeros counts as a perfect forecast."""
    denominator = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(
        2.0 * np.abs(actual - forecast), denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    return float(100.0 * np.mean(ratio))


def seasonal_naive(train: History, dates: np.ndarray) -> np.ndarray:
    """For each date, the last training value at or before the same time whole weeks earlier.

    Exactly what the seasonal-naive model fitted on `train` predicts (`model/baseline.py`).
    """
    return baseline.forecast_values(train.ds, train.y, dates)


def holdout_metrics(actual: np.ndarray, forecast: np.ndarray, naive: np.ndarray) -> dict[str, float | int]:
    return {
        "holdout_rows": len(actual),
        "mae": round(mae(actual, forecast), 6),
        "smape": round(smape(actual, forecast), 6),
        "naive_mae": round(mae(actual, naive), 6),
        "naive_smape": round(smape(actual, naive), 6),
    }
