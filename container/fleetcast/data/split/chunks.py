"""Chunk parsing: an input file's rows, a chunk at a time, validated, with every dropped row counted."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fleetcast.data.layout import CUSTOMER_COLUMN, INPUT_COLUMNS, TIME_COLUMN, TIMESTAMP_SPAN, VALUE_COLUMN
from fleetcast.data.split.errors import SplitError
from fleetcast.data.split.inputs import READ_ERRORS, READ_OPTIONS, Header, read_failure

# In the order a row's first problem is attributed.
DROP_REASONS = (
    "malformed_line",
    "empty_customer_id",
    "bad_timestamp",
    "timestamp_out_of_range",
    "consumption_not_a_number",
    "negative_consumption",
    "kept_column_not_a_number",  # a kept extra column (e.g. temperature) missing or not a finite number
)


@dataclass
class Counters:
    rows_read: int = 0
    rows_written: int = 0
    rows_of_other_hosts: int = 0  # a multi-instance job with replicated input: another instance splits them
    duplicate_timestamps: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    malformed_examples: list[str] = field(default_factory=list)

    @property
    def rows_dropped(self) -> int:
        return sum(self.dropped.values())


def read_chunks(
    path: Path,
    header: Header,
    chunk_rows: int,
    counters: Counters,
    owns: Callable[[str], bool] | None = None,
    extras: Sequence[str] = (),
) -> Iterator[pd.DataFrame]:
    """The file's rows, `chunk_rows` at a time, as our columns (the required ones, then `extras`), with
    lines that have too many fields counted.

    Every column is read (no `usecols`): with `usecols` the parser silently accepts lines with extra
    fields, and a line like `7,2022-01-01,1,5` (a decimal comma?) must be reported, not half-read.
    """
    ours = [*INPUT_COLUMNS, *extras]
    theirs = [header.present[name] for name in ours]
    numeric = {header.present[name] for name in (VALUE_COLUMN, *extras)}
    reader = pd.read_csv(
        path,
        # Text everywhere (ids like "007" stay text; other columns cost no type guessing) except the
        # consumption and kept extra columns, which the parser reads as numbers directly when it can.
        dtype={c: str for c in header.columns if c not in numeric},
        na_filter=False,  # an empty cell stays "" (counted), not NaN
        chunksize=chunk_rows,
        on_bad_lines="warn",
        **READ_OPTIONS,
    )
    with reader:
        while True:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", pd.errors.ParserWarning)
                try:
                    frame = next(reader)
                except StopIteration:
                    frame = None
                except (UnicodeDecodeError, pd.errors.ParserError) as exc:
                    raise SplitError(f"{path}: cannot parse: {exc}") from None
                except READ_ERRORS as exc:
                    raise SplitError(read_failure(path, exc)) from None
            for warning in caught:
                text = str(warning.message)
                bad = text.count("Skipping line")
                counters.rows_read += bad
                if owns is not None and not owns(
                    ""
                ):  # a malformed line names no customer: one instance counts it
                    counters.rows_of_other_hosts += bad
                    continue
                counters.dropped["malformed_line"] += bad
                for line in text.splitlines():
                    if line.strip() and len(counters.malformed_examples) < 5:
                        counters.malformed_examples.append(f"{path.name}: {line.strip()}")
            if frame is None:
                return
            yield frame[theirs].set_axis(ours, axis=1)


def _parse_times(text: pd.Series) -> pd.Series:
    stamps = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    retry = stamps.isna() & text.ne("")
    if retry.any():  # the ISO parser rejects surrounding blanks: strip only the rows that need it
        stamps[retry] = pd.to_datetime(text[retry].str.strip(), format="ISO8601", errors="coerce", utc=True)
    return stamps


@dataclass(frozen=True)
class ParsedChunk:
    """A chunk's valid rows: each row's customer as an index into `ids`, its time and value."""

    ids: np.ndarray  # distinct stripped ids that have at least one valid row (object array)
    codes: np.ndarray  # per row, an index into `ids`
    micros: np.ndarray  # per row, microseconds since the epoch (UTC, naive)
    values: np.ndarray  # per row, the consumption
    extras: np.ndarray  # per row, the kept extra columns' values: float64, shape (rows, extras)


_SPAN = tuple(pd.Timestamp(bound, tz="UTC") for bound in TIMESTAMP_SPAN)


def parse_chunk(
    frame: pd.DataFrame, counters: Counters, owns: Callable[[str], bool] | None = None
) -> ParsedChunk:
    """A chunk's valid rows, among those of customers this instance `owns` (None: all of them).

    Drops are counted by reason; ids are stripped of surrounding blanks. Work on ids is done once per
    distinct id, not per row. Rows of customers another instance owns are set aside first and counted
    as such, so every row is counted by exactly one instance.
    """
    counters.rows_read += len(frame)
    codes, distinct = pd.factorize(frame[CUSTOMER_COLUMN].to_numpy(dtype=object))
    distinct = np.array([str(d).strip() for d in distinct.tolist()], dtype=object)
    if owns is not None and not all(mine := [owns(d) for d in distinct.tolist()]):
        rows_mine = np.array(mine, dtype=bool)[codes]
        counters.rows_of_other_hosts += int((~rows_mine).sum())
        frame, codes = frame[rows_mine], codes[rows_mine]
    stamps = _parse_times(frame[TIME_COLUMN].astype(str))
    values = pd.to_numeric(frame[VALUE_COLUMN], errors="coerce").to_numpy(dtype=np.float64)
    names = list(frame.columns[len(INPUT_COLUMNS) :])
    extras = np.empty((len(frame), len(names)), dtype=np.float64)
    for i, name in enumerate(names):
        extras[:, i] = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
    parsed = stamps.notna().to_numpy(dtype=bool)
    inside = ((stamps >= _SPAN[0]) & (stamps < _SPAN[1])).to_numpy(dtype=bool)  # NaT: False

    keep = np.ones(len(frame), dtype=bool)
    problems = (
        ("empty_customer_id", (distinct == "")[codes]),
        ("bad_timestamp", ~parsed),
        ("timestamp_out_of_range", parsed & ~inside),
        ("consumption_not_a_number", ~np.isfinite(values)),
        ("negative_consumption", np.nan_to_num(values, nan=0.0) < 0),
        ("kept_column_not_a_number", ~np.isfinite(extras).all(axis=1)),
    )
    for reason, bad in problems:
        counters.dropped[reason] += int((bad & keep).sum())
        keep &= ~bad

    micros = stamps[keep].dt.tz_convert(None).dt.as_unit("us").to_numpy().view(np.int64)
    # Only ids with a surviving row become customers.
    row_codes, used = pd.factorize(codes[keep])
    # + 0.0 turns -0.0 into 0.0
    return ParsedChunk(
        ids=distinct[used],
        codes=row_codes,
        micros=micros,
        values=values[keep] + 0.0,
        extras=extras[keep] + 0.0,
    )
