"""Future values of the regressors a model was trained with, for the batch forecast (`--regressors PATH`).

A model trained with regressors (`regressors=temperature`) needs each one's value at every forecast date,
as an endpoint request carries them in `"regressors"`. The job takes them from:

- **a file**, `timestamp,<regressor>...` (CSV, optionally gzip'd): one table for every customer, such as a
  regional weather forecast. Read once per worker process; its size does not grow with the fleet.
- **a folder** of `<customer>.csv` files with the same columns: each customer's own values, read when that
  customer is forecast, so memory stays bounded at any fleet size.

A row per forecast date is needed for every regressor the model uses (extra rows and columns are
ignored, so one table serves a mixed fleet); anything missing fails that customer alone, naming the
regressor and the first date without a value.
"""

from __future__ import annotations

import csv
import functools
import gzip
import math
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from fleetcast.data.layout import TIME_COLUMN


class RegressorsError(Exception):
    """Future regressor values that cannot serve a customer; the message says what is missing."""


class FutureValues:
    """One table of future values: each regressor's value at each timestamp."""

    def __init__(self, where: str, stamps: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        order = np.argsort(stamps, kind="stable")
        self.where = where
        self.stamps = stamps[order]  # int64 nanoseconds, ascending
        repeated = self.stamps[1:][np.diff(self.stamps) == 0]
        if len(repeated):
            raise RegressorsError(f"{where}: timestamp {_text(repeated[:1])} appears twice")
        self.columns = {name: values[order] for name, values in columns.items()}

    def values(self, names: Iterable[str], dates: np.ndarray) -> dict[str, np.ndarray]:
        """Each named regressor at each of `dates` (datetime64[ns]); RegressorsError for a gap."""
        wanted = dates.astype("datetime64[ns]").view(np.int64)
        rows = np.minimum(np.searchsorted(self.stamps, wanted), max(len(self.stamps) - 1, 0))
        present = self.stamps[rows] == wanted if len(self.stamps) else np.zeros(len(wanted), dtype=bool)
        out = {}
        for name in names:
            if name not in self.columns:
                raise RegressorsError(f"{self.where} has no column {name!r}, which the model needs")
            if not present.all():
                raise RegressorsError(f"{self.where} has no {name!r} value for {_text(wanted[~present][:1])}")
            values = self.columns[name][rows]
            if not np.isfinite(values).all():
                raise RegressorsError(
                    f"{self.where}: {name!r} at {_text(wanted[~np.isfinite(values)][:1])} is not a number"
                )
            out[name] = values
        return out


def _text(stamps_ns: np.ndarray) -> str:
    return str(np.datetime_as_string(stamps_ns.view("datetime64[ns]").astype("datetime64[s]"))[0])


def read_table(path: Path) -> FutureValues:
    """A `timestamp,<regressor>...` CSV (gzip'd when its name ends in .gz); RegressorsError names a bad
    header, timestamp or value."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise RegressorsError(f"no {path}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RegressorsError(f"{path} cannot be read: {exc}") from None
    if not rows or not rows[0] or rows[0][0].strip() != TIME_COLUMN:
        found = ",".join(rows[0]) if rows else ""
        raise RegressorsError(f"{path}: the header must be {TIME_COLUMN},<regressor>,... (it is {found!r})")
    names = [name.strip() for name in rows[0][1:]]
    body = [row for row in rows[1:] if row]
    texts = [row[0].strip() for row in body]
    try:
        with warnings.catch_warnings():  # an offset is converted to UTC, as training reads its timestamps
            warnings.filterwarnings("ignore", "no explicit representation of timezones", UserWarning)
            stamps = np.array(texts, dtype="datetime64[ns]").view(np.int64)
    except ValueError:
        stamps = _as_training_reads(texts, path)
    columns = {}
    for index, name in enumerate(names, start=1):
        columns[name] = np.array([_number(row, index) for row in body], dtype=np.float64)
    return FutureValues(str(path), stamps, columns)


def _as_training_reads(texts: list[str], path: Path) -> np.ndarray:
    """Timestamps numpy's fast parser does not take (the compact `20230101T060000`, say), parsed as
    training parses its own (`training.inputs.parse_timestamps`, pandas' ISO 8601), as int64 ns."""
    import pandas as pd

    from fleetcast.training.inputs import parse_timestamps

    parsed = parse_timestamps(pd.Series(texts, dtype=object))
    bad = np.isnat(parsed)
    if bad.any():
        first = texts[int(np.argmax(bad))]
        raise RegressorsError(f"{path}: a timestamp cannot be read ({first!r}; ISO 8601, as in training)")
    return parsed.view(np.int64)


def _number(row: list[str], index: int) -> float:
    try:
        return float(row[index])
    except (IndexError, ValueError):
        return math.nan  # reported only if a customer needs it


@functools.lru_cache(maxsize=4)
def _shared_table(path: str) -> FutureValues:
    return read_table(Path(path))


def future_regressors(
    source: Path | None, customer: str, names: tuple[str, ...], dates: np.ndarray
) -> dict[str, np.ndarray]:
    """The values a model of `customer` needs at `dates`, from `source` (a file for every customer, or a
    folder of `<customer>.csv`); RegressorsError says what is missing."""
    if source is None:
        raise RegressorsError(
            f"the model needs future values of its regressors ({', '.join(names)}): pass --regressors "
            "(launch forecast --regressors-uri)"
        )
    if source.is_dir():
        own = source / f"{customer}.csv"
        if not own.is_file():
            raise RegressorsError(f"the regressors folder {source} has no {own.name} for customer {customer}")
        return read_table(own).values(names, dates)
    return _shared_table(str(source)).values(names, dates)


def check_source(source: Path) -> None:
    """Refuse, before any customer is forecast, a source that could serve none: a path that does not exist,
    or a table for every customer that cannot be read (its header, a timestamp). RegressorsError says why."""
    if not source.exists():
        raise RegressorsError(f"no regressors file or folder at {source}")
    if not source.is_dir():
        _shared_table(str(source))  # read once here; a worker in this process reuses it
