"""Dates of a model: the observation frequency, and the future grid a forecast covers.

A forecast only ever covers dates strictly after the last observation (never the whole history).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

_FREQUENCY_CACHE_SIZE = 64
_frequencies: dict[bytes, str] = {}


def infer_frequency(ds: pd.Series | np.ndarray) -> str:
    """The observation frequency as a pandas alias ('D', 'h', '30min', ...), for forecasting ahead.

    Memoised on the timestamps themselves: customers of one fleet usually share them.
    """
    stamps = np.asarray(ds, dtype="datetime64[ns]")
    key = hashlib.blake2b(stamps.tobytes(), digest_size=16).digest()
    if key not in _frequencies:
        if len(_frequencies) >= _FREQUENCY_CACHE_SIZE:
            _frequencies.pop(next(iter(_frequencies)))
        _frequencies[key] = _infer_frequency(stamps)
    return _frequencies[key]


def _infer_frequency(stamps: np.ndarray) -> str:
    unique = pd.DatetimeIndex(np.unique(stamps[~np.isnat(stamps)]))
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


def isoformat(stamp: np.datetime64) -> str:
    """As `pd.Timestamp.isoformat()` (what metadata.json has always held), for one datetime64."""
    return pd.Timestamp(stamp).isoformat()


def future_frame(last_observation: pd.Timestamp, periods: int, freq: str) -> pd.DataFrame:
    """`periods` dates strictly after the last observation, on the model's frequency grid."""
    dates = pd.date_range(start=last_observation, periods=periods + 1, freq=freq)
    dates = dates[dates > last_observation][:periods]
    return pd.DataFrame({"ds": dates})
