"""The blend model kind: a weighted mean of a Prophet forecast and seasonal-naive values.

Averaging two forecasts whose errors are not the same errors beats either alone more often than picking
the one that did better in cross-validation (the "forecast combination puzzle": simple fixed weights are
hard to beat, Stock & Watson 2004; Hyndman & Athanasopoulos, FPP3, section 13.4). Prophet's smooth
seasonal shape and trend err in other places than "same as last week", which repeats last week's noise and
level; on half-hourly load curves where neither wins clearly in cross-validation, and on daily customers
whose Prophet model barely beats naive, their blend is the better forecast.

A blend is `prophet_weight` x the Prophet forecast + (1 - `prophet_weight`) x a seasonal mix: the
weighted mean, by `season_weights` (summing to 1), of the values 1, 2, ... seasons (weeks) back
(`model/baseline.py`). `WEIGHTS` is the short fixed list of weightings training chooses from by
cross-validation (`training/selection.py`); their names say what they are.

In an archive of this kind, `model.json` is the Prophet part, stock Prophet JSON exactly as a Prophet
archive holds it (with the same optional compiled.json); metadata.json's `kind` is `blend` and its `blend`
entry (`BLEND_KEY`) is this module's document: the weights and the seasonal-naive model keeping as many
seasons as there are season weights. Intervals: the same weighted mean of the two parts' bounds (each part's
own interval; an upper bound on the blend's spread, since it treats the two parts' errors as moving
together).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fleetcast.model import baseline

FORMAT = "fleetcast-blend"
FORMAT_VERSION = 1
BLEND_KEY = "blend"  # metadata.json's entry holding the blend document


@dataclass(frozen=True)
class Weights:
    name: str
    prophet_weight: float  # in (0, 1); the seasonal mix takes the rest
    season_weights: tuple[float, ...]  # of the values 1, 2, ... seasons back; sum to 1

    @property
    def seasons(self) -> int:
        return len(self.season_weights)


# The seasonal mixes: last week alone, or the last four weeks with last week at 5/8 and each earlier week at
# 1/8. The four-week mix halves the noise last week's values carry (variance 5/8^2 + 3 x 1/8^2 = 0.44 of
# one week's) at the cost of a little staleness: alone, it was no worse than last week on 96 of
# bench/quality.py's 100 simulated half-hourly series.
LAST_WEEK = (1.0,)
FOUR_WEEKS = (5 / 8, 1 / 8, 1 / 8, 1 / 8)
# Prophet at three fixed weights with each mix, and Prophet at a third with the four-week mix (which is
# Prophet, last week and the mean of the last four weeks a third each). Listed by Prophet weight: the
# order training's parsimony rule prefers among near-equal scores (training/selection.py).
WEIGHTS = (
    Weights("prophet-0.25", 0.25, LAST_WEEK),
    Weights("prophet-0.25-4-weeks", 0.25, FOUR_WEEKS),
    Weights("thirds-4-weeks", 1 / 3, FOUR_WEEKS),
    Weights("prophet-0.50", 0.5, LAST_WEEK),
    Weights("prophet-0.50-4-weeks", 0.5, FOUR_WEEKS),
    Weights("prophet-0.75", 0.75, LAST_WEEK),
    Weights("prophet-0.75-4-weeks", 0.75, FOUR_WEEKS),
)


class BlendError(ValueError):
    """A blend document that is not complete and consistent."""


def blend_values(prophet: np.ndarray, seasonal: np.ndarray, prophet_weight: float) -> np.ndarray:
    """The blend of two aligned forecasts (or bounds)."""
    return prophet_weight * np.asarray(prophet, dtype=np.float64) + (1 - prophet_weight) * np.asarray(
        seasonal, dtype=np.float64
    )


def forecast_values(
    prophet: np.ndarray, ds: np.ndarray, y: np.ndarray, dates: np.ndarray, weights: Weights
) -> np.ndarray:
    """The blend's values at `dates`, given Prophet's forecast there and the sorted history (ds, y) before
    them: what a blend fitted on that history predicts (holdout scoring and cross-validation call this)."""
    seasonal = baseline.forecast_values(ds, y, dates, season_weights=weights.season_weights)
    return blend_values(prophet, seasonal, weights.prophet_weight)


@dataclass(frozen=True)
class Blend:
    """The weights and the seasonal part of a blend (the Prophet part is the archive's model.json)."""

    prophet_weight: float
    season_weights: tuple[float, ...]
    seasonal: baseline.SeasonalNaive
    name: str = ""  # the `WEIGHTS` entry it was chosen as

    def combine(
        self,
        dates: np.ndarray,
        yhat: np.ndarray,
        lower: np.ndarray | None = None,
        upper: np.ndarray | None = None,
    ) -> baseline.Prediction:
        """The blend at `dates` from the Prophet part's forecast there (with its bounds when intervals are
        wanted: then both parts' bounds are blended)."""
        intervals = lower is not None and upper is not None
        part = self.seasonal.predict(dates, intervals=intervals, season_weights=self.season_weights)
        ds = np.asarray(dates, dtype="datetime64[ns]")
        point = blend_values(yhat, part.yhat, self.prophet_weight)
        if not intervals:
            return baseline.Prediction(ds, point)
        return baseline.Prediction(
            ds,
            point,
            blend_values(lower, part.yhat_lower, self.prophet_weight),
            blend_values(upper, part.yhat_upper, self.prophet_weight),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "prophet_weight": self.prophet_weight,
            "season_weights": list(self.season_weights),
            "seasonal": self.seasonal.to_dict(),
        }

    @classmethod
    def from_dict(cls, document: Any) -> Blend:
        """The blend a `to_dict` document describes; BlendError names what is wrong with a bad one."""
        document = baseline.check_format(document, FORMAT, FORMAT_VERSION, BlendError)
        try:
            prophet_weight = float(document["prophet_weight"])
            season_weights = tuple(float(w) for w in document["season_weights"])
            seasonal = baseline.SeasonalNaive.from_dict(document["seasonal"])
            name = str(document.get("name", ""))
        except KeyError as exc:
            raise BlendError(f"missing field {exc.args[0]!r}") from None
        except baseline.BaselineError as exc:
            raise BlendError(f"its seasonal part: {exc}") from None
        except (TypeError, ValueError, OverflowError) as exc:
            raise BlendError(f"a field has the wrong type ({exc})") from None
        if not 0.0 <= prophet_weight <= 1.0:
            raise BlendError(f"prophet_weight {prophet_weight} is not in [0, 1]")
        if (
            not season_weights
            or not all(math.isfinite(w) and w >= 0 for w in season_weights)
            or not math.isclose(sum(season_weights), 1.0, abs_tol=1e-9)
        ):
            raise BlendError("season_weights must be a non-empty list of non-negative numbers summing to 1")
        return cls(prophet_weight, season_weights, seasonal, name)


def fit(
    ds: np.ndarray, y: np.ndarray, weights: Weights, *, freq: str, interval_width: float, intervals: bool
) -> Blend:
    """The seasonal part of a blend of a sorted history (the Prophet part is fitted as any Prophet model)."""
    seasonal = baseline.fit(
        ds, y, freq=freq, interval_width=interval_width, intervals=intervals, seasons=weights.seasons
    )
    return Blend(weights.prophet_weight, weights.season_weights, seasonal, weights.name)
