"""The seasonal-naive model kind: each future value is the value observed whole weeks earlier.

It is the yardstick every customer's Prophet model is scored against, and for some series (a load curve
that repeats week after week) no candidate beats it. Shipping it as a model of its own keeps the promise
that a customer's forecast is never worse than "same as last week".

What it keeps (`fit`):
- the last season of observations (one week, plus the observation just before it, so a date falling
  between two observations takes the earlier one exactly as it did in the history);
- the observation frequency (the grid a forecast steps on when the request names none);
- the spread of its own one-season errors over the history (y_t minus the value one season before),
  as the two quantiles that bound `interval_width` of them. A forecast `k` whole seasons ahead repeats
  a value `k` seasons old; its interval widens by sqrt(k), the seasonal-naive rule for independent
  season-to-season changes (Hyndman & Athanasopoulos, FPP3, section 5.5).

A forecast for date d (`predict`) repeats the last observation at or before d - k * season, with k the
fewest whole seasons that reach back into the observed history; `forecast_values` gives the same numbers
from a whole history, and is what holdout scoring and cross-validation call. Both also take
`season_weights`: a weighted mean of the values k, k+1, ... seasons back (the blend kind, `model/blend.py`,
mixes last week with the mean of the last few weeks); a model `fit` with `seasons=n` keeps n seasons for
that. The default, one weight, is plain seasonal-naive. Dates are numpy datetime64:
no pandas on the predict path. The JSON form (`to_json`/`from_json`) is what the archive's model.json
holds when metadata.json names this kind.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

FORMAT = "fleetcast-seasonal-naive"
FORMAT_VERSION = 1
NS_PER_DAY = 86_400 * 1_000_000_000
SEASON_NS = 7 * NS_PER_DAY  # one week: energy use repeats with the working week


class BaselineError(ValueError):
    """A baseline document that is not a complete, consistent seasonal-naive model."""


def check_format(document: Any, name: str, version: int, error: type[ValueError]) -> dict[str, Any]:
    """`document`, if it is a JSON object of format `name` at `version` (this module's and the documents
    built on it: model/blend.py, model/seasonal_change.py); `error` saying which it is not otherwise."""
    if not isinstance(document, dict) or document.get("format") != name:
        raise error(f"not a {name} document")
    if document.get("format_version") != version:
        raise error(f"format_version {document.get('format_version')!r} is not {version}")
    return document


@dataclass(frozen=True)
class Prediction:
    """Values for the given dates; the bounds are None without intervals."""

    ds: np.ndarray  # datetime64[ns]
    yhat: np.ndarray
    yhat_lower: np.ndarray | None = None
    yhat_upper: np.ndarray | None = None


def _as_ns(dates: Any) -> np.ndarray:
    return np.asarray(dates, dtype="datetime64[ns]").view(np.int64)


def _seasons_back(last_ns: int, wanted_ns: np.ndarray, season_ns: int) -> np.ndarray:
    """The fewest whole seasons (at least one) that take each date back to or before the last observation.

    ceil((wanted - last) / season) in exact integer nanoseconds.
    """
    return np.maximum(-((last_ns - wanted_ns) // season_ns), 1)


def _repeat(
    stamps_ns: np.ndarray, values: np.ndarray, wanted_ns: np.ndarray, seasons: np.ndarray, season_ns: int
) -> np.ndarray:
    """The last value at or before each date moved `seasons` seasons back (before them all: the first)."""
    position = np.searchsorted(stamps_ns, wanted_ns - seasons * season_ns, side="right") - 1
    return np.where(position >= 0, values[np.maximum(position, 0)], values[0])


def _weighted_repeat(
    stamps_ns: np.ndarray,
    values: np.ndarray,
    wanted_ns: np.ndarray,
    seasons: np.ndarray,
    season_ns: int,
    season_weights: tuple[float, ...],
) -> np.ndarray:
    """sum_j season_weights[j] x (the value `seasons + j` seasons back)."""
    total = np.zeros(len(wanted_ns))
    for extra, weight in enumerate(season_weights):
        total += weight * _repeat(stamps_ns, values, wanted_ns, seasons + extra, season_ns)
    return total


def seasons_ahead(last: Any, dates: Any, season_ns: int = SEASON_NS) -> np.ndarray:
    """How many whole seasons each date lies ahead of the last observation `last` (at least one): the k of
    "the value k seasons back" a forecast for it repeats."""
    return _seasons_back(int(_as_ns(last)), _as_ns(dates), season_ns).astype(np.float64)


def one_season_changes(
    ds: Any, y: Any, season_ns: int = SEASON_NS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(timestamps in int64 ns, which rows have a season of history before them, and for those rows the
    value minus the last value at or before one season earlier) of a sorted history."""
    stamps = _as_ns(ds)
    values = np.asarray(y, dtype=np.float64)
    has_season_before = stamps - season_ns >= stamps[0]
    wanted = stamps[has_season_before]
    previous = _repeat(stamps, values, wanted, np.ones(len(wanted), dtype=np.int64), season_ns)
    return stamps, has_season_before, values[has_season_before] - previous


def forecast_values(
    ds: np.ndarray,
    y: np.ndarray,
    dates: np.ndarray,
    season_ns: int = SEASON_NS,
    season_weights: tuple[float, ...] = (1.0,),
) -> np.ndarray:
    """Seasonal-naive values for `dates` from a sorted history (what a model fitted on it predicts)."""
    stamps = _as_ns(ds)
    wanted = _as_ns(dates)
    return _weighted_repeat(
        stamps,
        np.asarray(y, dtype=np.float64),
        wanted,
        _seasons_back(stamps[-1], wanted, season_ns),
        season_ns,
        season_weights,
    )


@dataclass(frozen=True)
class SeasonalNaive:
    """A fitted seasonal-naive model: its last season of values and the spread of its errors."""

    stamps_ns: np.ndarray  # int64 nanoseconds, ascending: the last season(s) and the observation before
    values: np.ndarray
    freq: str  # pandas alias of the observation grid ('D', '30min', ...)
    season_ns: int
    interval_width: float
    residual_lower: float  # quantile (1 - interval_width) / 2 of the one-season errors
    residual_upper: float  # quantile (1 + interval_width) / 2
    intervals: bool  # False when the configuration asked for no uncertainty (uncertainty_samples=0)

    @property
    def last_observation(self) -> np.datetime64:
        return np.datetime64(int(self.stamps_ns[-1]), "ns")

    def predict(
        self, dates: Any, *, intervals: bool, season_weights: tuple[float, ...] = (1.0,)
    ) -> Prediction:
        """Values for `dates` (datetime64), with the interval bounds when `intervals`.

        With several `season_weights` (summing to 1) the value is their weighted mean of the values 1, 2, ...
        seasons back; the interval keeps the one-season error quantiles (a mean of several seasons errs
        less, so the band is on the wide side).
        """
        if intervals and not self.intervals:
            raise ValueError("this model was fitted without intervals")
        wanted = _as_ns(dates)
        seasons = _seasons_back(int(self.stamps_ns[-1]), wanted, self.season_ns)
        yhat = _weighted_repeat(self.stamps_ns, self.values, wanted, seasons, self.season_ns, season_weights)
        ds = wanted.view("datetime64[ns]")
        if not intervals:
            return Prediction(ds, yhat)
        widen = np.sqrt(seasons.astype(np.float64))
        return Prediction(ds, yhat, yhat + self.residual_lower * widen, yhat + self.residual_upper * widen)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "freq": self.freq,
            "season_ns": self.season_ns,
            "stamps_ns": [int(value) for value in self.stamps_ns],
            "values": [float(value) for value in self.values],
            "interval_width": self.interval_width,
            "residual_lower": self.residual_lower,
            "residual_upper": self.residual_upper,
            "intervals": self.intervals,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, document: Any) -> SeasonalNaive:
        """The model a `to_dict` document describes; BaselineError names what is wrong with a bad one."""
        document = check_format(document, FORMAT, FORMAT_VERSION, BaselineError)
        try:
            stamps = np.asarray(document["stamps_ns"], dtype=np.int64)
            values = np.asarray(document["values"], dtype=np.float64)
            model = cls(
                stamps_ns=stamps,
                values=values,
                freq=str(document["freq"]),
                season_ns=int(document["season_ns"]),
                interval_width=float(document["interval_width"]),
                residual_lower=float(document["residual_lower"]),
                residual_upper=float(document["residual_upper"]),
                intervals=bool(document["intervals"]),
            )
        except KeyError as exc:
            raise BaselineError(f"missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError, OverflowError) as exc:
            raise BaselineError(f"a field has the wrong type ({exc})") from None
        if stamps.ndim != 1 or len(stamps) == 0 or stamps.shape != values.shape:
            raise BaselineError("stamps_ns and values must be equally long, non-empty lists")
        if np.any(np.diff(stamps) < 0) or not np.all(np.isfinite(values)) or model.season_ns <= 0:
            raise BaselineError("stamps_ns must ascend, values be finite and season_ns positive")
        if not (math.isfinite(model.residual_lower) and math.isfinite(model.residual_upper)):
            raise BaselineError("the residual quantiles must be finite")
        return model

    @classmethod
    def from_json(cls, text: str) -> SeasonalNaive:
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise BaselineError(f"not JSON ({exc})") from None
        return cls.from_dict(document)


def fit(
    ds: np.ndarray,
    y: np.ndarray,
    *,
    freq: str,
    interval_width: float,
    intervals: bool,
    season_ns: int = SEASON_NS,
    seasons: int = 1,
) -> SeasonalNaive:
    """The seasonal-naive model of a sorted history of timestamps and finite values, keeping the last
    `seasons` seasons (what `predict` with that many season weights reads)."""
    stamps = _as_ns(ds)
    values = np.asarray(y, dtype=np.float64)
    if len(stamps) == 0 or stamps.shape != values.shape:
        raise ValueError("a seasonal-naive model needs a non-empty history of equally many dates and values")
    last = int(stamps[-1])
    # Every date a forecast can reach back to lies in (last - seasons x season, last]; keep from the
    # observation at or before its start, so each lookup finds what it would have found in the whole history.
    keep_from = max(int(np.searchsorted(stamps, last - seasons * season_ns, side="right")) - 1, 0)
    lower, upper = _error_quantiles(stamps, values, interval_width, season_ns)
    return SeasonalNaive(
        stamps_ns=stamps[keep_from:].copy(),
        values=values[keep_from:].copy(),
        freq=freq,
        season_ns=season_ns,
        interval_width=float(interval_width),
        residual_lower=lower,
        residual_upper=upper,
        intervals=intervals,
    )


def _error_quantiles(
    stamps: np.ndarray, values: np.ndarray, interval_width: float, season_ns: int
) -> tuple[float, float]:
    """Quantiles of y_t minus the value one season before, over the rows that have a season before them.

    A history shorter than one season has no such error; the spread of its values around their mean
    stands in (wide, which is honest about how little is known).
    """
    _, has_season_before, errors = one_season_changes(stamps, values, season_ns)
    if not np.any(has_season_before):
        errors = values - values.mean()
    low, high = np.quantile(errors, [(1 - interval_width) / 2, (1 + interval_width) / 2])
    return float(low), float(high)
