"""A country's public holidays as Prophet's holiday features, from the `holidays` package Prophet uses.

Prophet's `add_country_holidays(code)` asks `holidays` for the calendar of the years its dates fall in
(`make_holidays_df`: the years of the frame's dates, as a Python set, in English names), then gives
every holiday name one 0/1 column, `<name>_delim_+0`, set on the rows whose calendar date is that
holiday. At predict time the same calendar is rebuilt for the forecast's years and reduced to the names
seen in training, so a holiday in a year past the training data is honoured. Fitting (`model/fit`) and
the compiled predictor both build their columns here, the same way, without pandas or Prophet.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

NS_PER_DAY = 86_400 * 1_000_000_000
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()
# prophet.make_holidays.get_country_holidays_class's compatibility spelling.
_SUBSTITUTIONS = {"TU": "TR"}
# Prophet writes holiday windows into the column name; country holidays have none (+0 days).
WINDOW_SUFFIX = "_delim_+0"


class UnknownCountryError(ValueError):
    """A country code the `holidays` package has no calendar for."""


def _holiday_class(country: str) -> Any:
    import holidays

    name = _SUBSTITUTIONS.get(country, country)
    if name not in _supported():
        raise UnknownCountryError(
            f"must be a country code the holidays package has a calendar for (like US, DE, GB); {country!r} "
            "is not"
        )
    return getattr(holidays, name)  # what Prophet's get_country_holidays_class returns


@functools.cache
def _supported() -> frozenset[str]:
    import holidays

    return frozenset(holidays.list_supported_countries())


def validate_country(code: str) -> str:
    """The code itself when `holidays` has a calendar for it (Prophet's spelling: 'US', 'DE', 'GB')."""
    _holiday_class(code)
    return code


def year_list(ds_ns: np.ndarray) -> tuple[int, ...]:
    """`list({x.year for x in dates})` as Prophet builds it: a Python set's order (`holidays` follows it)."""
    years = np.asarray(ds_ns, dtype=np.int64).view("datetime64[ns]").astype("datetime64[Y]").astype(np.int64)
    return tuple({int(year) + 1970 for year in np.unique(years)})


@functools.lru_cache(maxsize=256)
def calendar(country: str, years: tuple[int, ...]) -> tuple[tuple[int, str], ...]:
    """(day since the epoch, name) of every holiday in those years, in the rows' order of Prophet's frame."""
    holidays = _holiday_class(country)(expand=False, language="en_US", subdiv=None, years=list(years))
    return tuple(
        (day.toordinal() - _EPOCH_ORDINAL, name) for day in holidays for name in holidays.get_list(day)
    )


def warm_up() -> None:
    """Import `holidays` and build one calendar (~0.3 s the first time in a process): done before a
    server forks its workers, no holiday model's first forecast pays it."""
    calendar("US", (2024,))


def warm_up_for(metadata: dict) -> None:
    """Build the calendar a model's forecasts will read (its country, the year its history ends), for a
    server that loads each model in a process of its own (MMS) and so cannot warm up before a fork."""
    settings = metadata.get("prophet")
    country = settings.get("country_holidays") if isinstance(settings, dict) else None
    end = metadata.get("end")
    if isinstance(country, str) and country and isinstance(end, str) and end[:4].isdigit():
        calendar(country, (int(end[:4]),))


def days(ds_ns: np.ndarray) -> np.ndarray:
    """Each timestamp's calendar date, as days since the epoch (Prophet matches `ds.dt.date`)."""
    return np.floor_divide(np.asarray(ds_ns, dtype=np.int64), NS_PER_DAY)


def training_names(country: str, ds_ns: np.ndarray) -> list[str]:
    """`train_holiday_names`: every holiday name of the training years, in order of first appearance."""
    return list(dict.fromkeys(name for _, name in calendar(country, year_list(ds_ns))))


def column_names(names: list[str]) -> list[str]:
    """The holiday names in the order of their feature columns (Prophet sorts the column names)."""
    return sorted(names, key=lambda name: name + WINDOW_SUFFIX)


def features(country: str, names: Sequence[str], ds_ns: np.ndarray) -> np.ndarray:
    """(len(ds), len(names)) 0/1 columns, one per name in `names` (column order), for sorted `ds_ns`.

    Holidays of these dates' years that are not among `names` are left out, as Prophet's predict leaves
    out names it did not see in training.
    """
    row_days = days(ds_ns)
    out = np.zeros((len(row_days), len(names)))
    holiday_days, columns = _entries(country, year_list(ds_ns), tuple(names))
    first = np.searchsorted(row_days, holiday_days, side="left")
    after = np.searchsorted(row_days, holiday_days, side="right")
    for entry in np.flatnonzero(after > first):  # the holidays that fall on these dates
        out[first[entry] : after[entry], columns[entry]] = 1.0
    return out


@functools.lru_cache(maxsize=256)
def _entries(country: str, years: tuple[int, ...], names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The calendar's (day, column) pairs for the holidays among `names`, as two arrays."""
    column = {name: j for j, name in enumerate(names)}
    pairs = [(day, column[name]) for day, name in calendar(country, years) if name in column]
    return (
        np.array([day for day, _ in pairs], dtype=np.int64),
        np.array([j for _, j in pairs], dtype=np.int64),
    )
