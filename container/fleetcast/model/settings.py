"""What a Prophet model is configured with: the settings every stage shares, and their string parsers.

The training job parses hyperparameters through `PROPHET_PARSERS`; `launch/` and the tests import the same
table, so a key is spelled in exactly one place.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


def integer_in(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text.strip())
        if value < minimum or (maximum is not None and value > maximum):
            bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise ValueError(f"must be {bound}")
        return value

    return parse


def float_in(
    low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = float(text.strip())
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if too_low or too_high or math.isnan(value):
            lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
            raise ValueError(f"must be in {lo}{low:g}, {high:g}{hi}")
        return value

    return parse


def one_of(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def boolean(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise ValueError("must be true or false")
    return value == "true"


def _seasonality(text: str) -> str | bool | int:
    """Prophet's seasonality switch: auto, true, false, or a Fourier order."""
    value = text.strip().lower()
    if value == "auto":
        return "auto"
    if value in ("true", "false"):
        return value == "true"
    order = int(value)
    if order < 1:
        raise ValueError("must be auto, true, false or a positive Fourier order")
    return order


@dataclass(frozen=True)
class ProphetSettings:
    """Everything that changes the fitted model. Defaults suit daily energy data."""

    growth: str = "linear"
    seasonality_mode: str = "additive"
    yearly_seasonality: str | bool | int = "auto"
    weekly_seasonality: str | bool | int = "auto"
    daily_seasonality: str | bool | int = "auto"
    changepoint_prior_scale: float = 0.05
    seasonality_prior_scale: float = 10.0
    n_changepoints: int = 25
    changepoint_range: float = 0.8
    interval_width: float = 0.8
    uncertainty_samples: int = 1000
    # One daily seasonality for Monday-Friday and another for the weekend instead of one for every day
    # (Prophet's conditional seasonality, the condition computed from the timestamp: model/conditions.py).
    daily_by_day_type: bool = False

    def prophet_kwargs(self) -> dict[str, Any]:
        """The stock `Prophet(...)` arguments (conditional seasonalities are added to the object after)."""
        kwargs = asdict(self)
        if kwargs.pop("daily_by_day_type"):
            kwargs["daily_seasonality"] = False  # the two conditional daily seasonalities replace it
        return kwargs


PROPHET_PARSERS: dict[str, Callable[[str], Any]] = {
    "growth": one_of("linear", "flat"),
    "seasonality_mode": one_of("additive", "multiplicative"),
    "yearly_seasonality": _seasonality,
    "weekly_seasonality": _seasonality,
    "daily_seasonality": _seasonality,
    "changepoint_prior_scale": float_in(0.0, 1e6, low_open=True),
    "seasonality_prior_scale": float_in(0.0, 1e6, low_open=True),
    "n_changepoints": integer_in(0, 1000),
    "changepoint_range": float_in(0.0, 1.0, low_open=True),
    "interval_width": float_in(0.0, 1.0, low_open=True, high_open=True),
    "uncertainty_samples": integer_in(0, 100_000),
    "daily_by_day_type": boolean,
}
