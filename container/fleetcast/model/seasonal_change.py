"""The seasonal-change model kind: last week's values plus Prophet's forecast of the week-over-week change.

Prophet fitted on the level of a load curve carries its whole history's shape and trend: the evening peak
of June when August is asked for, and a trend extrapolated out of a holiday dip and its recovery. Fitted
on the seasonally differenced series instead (y_t minus the value one season, a week, earlier: ARIMA's
seasonal differencing, Hyndman & Athanasopoulos, FPP3, section 9.1) it forecasts how this week will
differ from the last one: the steady drift and how the daily shape moves from week to week. The forecast
is seasonal-naive plus that change, so it starts from where the series is now.

The Prophet part is stock Prophet on the change series, restricted (`part_settings`) to flat growth and
seasonalities that repeat every week (daily, weekly, the day-type daily ones): no yearly seasonality,
holidays or extra regressors. So its forecast of the change is the same at d, d - 1 week, d - 2 weeks, ...
and a date `k` whole seasons ahead of the last observation is exactly the value k seasons back plus k
times the change Prophet forecasts for it (`forecast_values`, `SeasonalChange.combine`). Its interval is
that point plus sqrt(k) times the Prophet part's own bounds around its change (k independent changes).

In an archive of this kind, `model.json` is the Prophet part (stock Prophet JSON, with the optional
compiled.json as for any Prophet model); metadata.json's `kind` is `seasonal-change` and its
`seasonal_change` entry (`CHANGE_KEY`) holds the last season of values (`model/baseline.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fleetcast.model import baseline
from fleetcast.model.settings import ProphetSettings

FORMAT = "fleetcast-seasonal-change"
FORMAT_VERSION = 1
CHANGE_KEY = "seasonal_change"  # metadata.json's entry holding this module's document


class SeasonalChangeError(ValueError):
    """A seasonal-change document that is not complete and consistent."""


def part_settings(base: ProphetSettings) -> ProphetSettings:
    """The configuration of the Prophet part: `base` with flat growth and only its weekly-periodic
    seasonalities (what makes the change the same in every week ahead)."""
    return replace(base, growth="flat", yearly_seasonality=False, country_holidays=None, regressors=())


def changes(ds: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The change series of a sorted history: each row at least one season after the first, its value
    minus the value one season earlier (what the Prophet part is fitted on)."""
    stamps, has_season_before, change = baseline.one_season_changes(ds, y)
    return stamps[has_season_before].view("datetime64[ns]"), change


def forecast_values(change: np.ndarray, ds: np.ndarray, y: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """The model's values at `dates`, given the Prophet part's change forecast there and the sorted
    history (ds, y) before them (holdout scoring and cross-validation call this)."""
    ahead = baseline.seasons_ahead(ds[-1], dates)
    return baseline.forecast_values(ds, y, dates) + ahead * np.asarray(change, dtype=np.float64)


@dataclass(frozen=True)
class SeasonalChange:
    """The seasonal part of a seasonal-change model (the Prophet part is the archive's model.json)."""

    seasonal: baseline.SeasonalNaive  # the last season of values
    name: str = ""  # the candidate it was chosen as

    def combine(
        self,
        dates: np.ndarray,
        yhat: np.ndarray,
        lower: np.ndarray | None = None,
        upper: np.ndarray | None = None,
    ) -> baseline.Prediction:
        """The model at `dates` from the Prophet part's change forecast there (with its bounds when
        intervals are wanted)."""
        ds = np.asarray(dates, dtype="datetime64[ns]")
        ahead = baseline.seasons_ahead(self.seasonal.last_observation, ds)
        change = np.asarray(yhat, dtype=np.float64)
        point = self.seasonal.predict(ds, intervals=False).yhat + ahead * change
        if lower is None or upper is None:
            return baseline.Prediction(ds, point)
        widen = np.sqrt(ahead)
        return baseline.Prediction(
            ds,
            point,
            point + widen * (np.asarray(lower, dtype=np.float64) - change),
            point + widen * (np.asarray(upper, dtype=np.float64) - change),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "seasonal": self.seasonal.to_dict(),
        }

    @classmethod
    def from_dict(cls, document: Any) -> SeasonalChange:
        """The model a `to_dict` document describes; SeasonalChangeError says what is wrong with a bad one."""
        document = baseline.check_format(document, FORMAT, FORMAT_VERSION, SeasonalChangeError)
        if "seasonal" not in document:
            raise SeasonalChangeError("missing field 'seasonal'")
        try:
            seasonal = baseline.SeasonalNaive.from_dict(document["seasonal"])
        except baseline.BaselineError as exc:
            raise SeasonalChangeError(f"its seasonal part: {exc}") from None
        return cls(seasonal, str(document.get("name", "")))


def fit(
    ds: np.ndarray, y: np.ndarray, *, name: str, freq: str, interval_width: float, intervals: bool
) -> SeasonalChange:
    """The seasonal part of a sorted history (the Prophet part is fitted on `changes(ds, y)`)."""
    seasonal = baseline.fit(ds, y, freq=freq, interval_width=interval_width, intervals=intervals)
    return SeasonalChange(seasonal, name)
