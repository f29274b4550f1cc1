"""Chunk parsing: an input file's rows, a chunk at a time, validated, with every dropped row counted."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fleetcast.data.layout import CUSTOMER_COLUMN, TIME_COLUMN, VALUE_COLUMN
from fleetcast.data.split.errors import SplitError
from fleetcast.data.split.inputs import READ_OPTIONS, Header

# In the order a row's first problem is attributed.
DROP_REASONS = (
    "malformed_line",
    "empty_customer_id",
    "bad_timestamp",
    "consumption_not_a_number",
    "negative_consumption",
)


@dataclass
class Counters:
    rows_read: int = 0
    rows_written: int = 0
    duplicate_timestamps: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    malformed_examples: list[str] = field(default_factory=list)

    @property
    def rows_dropped(self) -> int:
        return sum(self.dropped.values())


def read_chunks(path: Path, header: Header, chunk_rows: int, counters: Counters) -> Iterator[pd.DataFrame]:
    """The file's rows, `chunk_rows` at a time, with lines that have too many fields counted.

    Every column is read (no `usecols`): with `usecols` the parser silently accepts lines with extra
    fields, and a line like `7,2022-01-01,1,5` (a decimal comma?) must be reported, not half-read.
    """
    consumption = header.required[VALUE_COLUMN]
    reader = pd.read_csv(
        path,
        # Text everywhere (ids like "007" stay text; extra columns cost no type guessing) except the
        # consumption, which the parser reads as numbers directly when it can.
        dtype={c: str for c in header.columns if c != consumption},
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
            for warning in caught:
                text = str(warning.message)
                bad = text.count("Skipping line")
                counters.dropped["malformed_line"] += bad
                counters.rows_read += bad
                for line in text.splitlines():
                    if line.strip() and len(counters.malformed_examples) < 5:
                        counters.malformed_examples.append(f"{path.name}: {line.strip()}")
            if frame is None:
                return
            yield frame[list(header.required.values())].set_axis(list(header.required), axis=1)


def _parse_times(text: pd.Series) -> pd.Series:
    stamps = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    retry = stamps.isna() & text.ne("")
    if retry.any():  # the ISO parser rejects surrounding blanks: strip only the rows that need it
        stamps[retry] = pd.to_datetime(text[retry].str.strip(), format="ISO8601", errors="coerce", utc=True)
    return stamps


def parse_chunk(
    frame: pd.DataFrame, counters: Counters
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A chunk's valid rows as (distinct ids, each row's index into them, microseconds, values).

    Drops are counted by reason; ids are stripped of surrounding blanks. Work on ids is done once per
    distinct id, not per row.
    """
    counters.rows_read += len(frame)
    codes, distinct = pd.factorize(frame[CUSTOMER_COLUMN].to_numpy(dtype=object))
    distinct = np.array([str(d).strip() for d in distinct.tolist()], dtype=object)
    stamps = _parse_times(frame[TIME_COLUMN].astype(str))
    values = pd.to_numeric(frame[VALUE_COLUMN], errors="coerce").to_numpy(dtype=np.float64)

    keep = np.ones(len(frame), dtype=bool)
    problems = (
        ("empty_customer_id", (distinct == "")[codes]),
        ("bad_timestamp", stamps.isna().to_numpy(dtype=bool)),
        ("consumption_not_a_number", ~np.isfinite(values)),
        ("negative_consumption", np.nan_to_num(values, nan=0.0) < 0),
    )
    for reason, bad in problems:
        counters.dropped[reason] += int((bad & keep).sum())
        keep &= ~bad

    micros = stamps[keep].dt.tz_convert(None).dt.as_unit("us").to_numpy().view(np.int64)
    # Only ids with a surviving row become customers.
    row_codes, used = pd.factorize(codes[keep])
    return distinct[used], row_codes, micros, values[keep] + 0.0  # + 0.0 turns -0.0 into 0.0
