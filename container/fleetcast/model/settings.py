"""What a Prophet model is configured with: the settings every stage shares, and their string parsers.

The training job parses hyperparameters through `PROPHET_PARSERS`; `launch/` and the tests import the same
table, so a key is spelled in exactly one place.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

MODES = ("additive", "multiplicative")
# Names Prophet reserves for its own columns and components (`Prophet.validate_column_name`): a regressor
# cannot take them.
_COMPONENTS = ("trend", "additive_terms", "multiplicative_terms", "daily", "weekly", "yearly", "holidays")
_COMPONENTS += ("zeros", "yhat", "extra_regressors_additive", "extra_regressors_multiplicative")
RESERVED_NAMES = frozenset(
    [
        *_COMPONENTS,
        *(f"{name}_{bound}" for name in _COMPONENTS for bound in ("lower", "upper")),
        *("ds", "y", "cap", "floor", "y_scaled", "cap_scaled"),
    ]
)
# A regressor is a column of the input: plain identifiers keep it unambiguous in CSV headers and requests.
_REGRESSOR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")


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
class Regressor:
    """An extra column the model is fitted on (`Prophet.add_regressor`), needed again at forecast time."""

    name: str
    mode: str | None = None  # additive | multiplicative; None: Prophet's default, the seasonality mode

    def spec(self) -> str:
        """The hyperparameter text this regressor is written as."""
        return self.name if self.mode is None else f"{self.name}:{self.mode}"


def regressor_list(text: str) -> tuple[Regressor, ...]:
    """`regressors`: a comma list of `name`, `name:additive` or `name:multiplicative` ("" for none)."""
    regressors: list[Regressor] = []
    for item in text.split(","):
        if not item.strip():
            continue
        name, _, mode = (part.strip() for part in item.partition(":"))
        if not _REGRESSOR_NAME.match(name):
            raise ValueError(f"regressor {name!r}: must be a column name of letters, digits and _")
        if name in RESERVED_NAMES:
            raise ValueError(f"regressor {name!r}: must not be a name Prophet reserves")
        if mode and mode.lower() not in MODES:
            raise ValueError(f"regressor {name!r}: mode must be {' or '.join(MODES)}, not {mode!r}")
        if any(known.name == name for known in regressors):
            raise ValueError(f"regressor {name!r}: must be listed once")
        regressors.append(Regressor(name, mode.lower() or None))
    return tuple(regressors)


def country_code(text: str) -> str | None:
    """`country_holidays`: an ISO country code the `holidays` package knows ("" or "none" for none)."""
    value = text.strip()
    if value.lower() in ("", "none"):
        return None
    from fleetcast.model import country_holidays

    return country_holidays.validate_country(value)


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
    holidays_prior_scale: float = 10.0
    # What drives demand besides time: a country's public holidays (`Prophet.add_country_holidays`) and
    # extra columns (`Prophet.add_regressor`, standardised as Prophet does, with regressor_prior_scale).
    country_holidays: str | None = None
    regressors: tuple[Regressor, ...] = ()
    regressor_prior_scale: float = 10.0
    # One daily seasonality for Monday-Friday and another for the weekend instead of one for every day
    # (Prophet's conditional seasonality, the condition computed from the timestamp: model/conditions.py).
    daily_by_day_type: bool = False

    def prophet_kwargs(self) -> dict[str, Any]:
        """Every setting, as JSON reads back (metadata.json records them)."""
        kwargs = asdict(self)
        kwargs["regressors"] = list(kwargs["regressors"])
        return kwargs

    def constructor_kwargs(self) -> dict[str, Any]:
        """What `Prophet(...)` takes; holidays, regressors and the day-type daily seasonalities are added
        by `add_*` calls."""
        kwargs = asdict(self)
        for name in ("country_holidays", "regressors", "regressor_prior_scale"):
            del kwargs[name]
        if kwargs.pop("daily_by_day_type"):
            kwargs["daily_seasonality"] = False  # the two conditional daily seasonalities replace it
        return kwargs

    @property
    def regressor_names(self) -> tuple[str, ...]:
        return tuple(regressor.name for regressor in self.regressors)

    def regressor_mode(self, regressor: Regressor) -> str:
        return regressor.mode or self.seasonality_mode


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
    "holidays_prior_scale": float_in(0.0, 1e6, low_open=True),
    "country_holidays": country_code,
    "regressors": regressor_list,
    "regressor_prior_scale": float_in(0.0, 1e6, low_open=True),
    "daily_by_day_type": boolean,
}
