"""Holdout scoring: how well a customer's model forecasts its last days, against a seasonal-naive baseline.

The baseline repeats the value observed one week earlier (whole weeks back, so it only uses training
data), the usual yardstick for weekly-seasonal energy data: a model that cannot beat it is not worth much.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fleetcast.training.inputs import History

SEASON_NS = 7 * 86_400 * 1_000_000_000
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
    """For each date, the last training value at or before the same time whole weeks earlier."""
    stamps, values = train.ds_ns, train.y  # sorted ascending
    wanted = np.asarray(dates, dtype="datetime64[ns]").view(np.int64)
    season = SEASON_NS
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
