"""Finding customers in a training channel, in any of the three layouts of `fleetcast.data.layout`.

A task is what one worker fits: a customer and either the file to read or the rows themselves, and the
most rows it may have (`max_rows_per_customer`): a bigger customer fails before it is read whole.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fleetcast.data.customer_ids import safe_customer_id
from fleetcast.data.layout import CUSTOMER_COLUMN, CUSTOMER_FILE, TIME_COLUMN, TIMESTAMP_SPAN, VALUE_COLUMN


class NoInputError(Exception):
    """The channel holds nothing to train on."""


class TooManyRowsError(Exception):
    """More rows than `max_rows_per_customer`: fitting them could exhaust the worker's memory."""

    def __init__(self, cap: int, rows: str) -> None:
        super().__init__(
            f"the customer has {rows} rows, over max_rows_per_customer={cap} (the most one worker may fit "
            "in this instance's memory); raise that hyperparameter or use an instance with more memory"
        )


@dataclass(frozen=True)
class CustomerTask:
    customer: str
    path: Path | None = None  # folder or flat layout: the worker reads the file
    timestamps: np.ndarray | None = None  # bucket layout: rows already read (datetime64[ns])
    values: np.ndarray | None = None
    max_rows: int = 0  # 0: no cap


@dataclass(frozen=True)
class ChannelInventory:
    files: list[Path]  # one customer each
    buckets: list[Path]  # many customers each

    def __len__(self) -> int:
        return len(self.files) + len(self.buckets)


def _first_line(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.readline().strip().lower()


def scan_channel(channel_dir: Path, *, may_be_empty: bool = False) -> ChannelInventory:
    """The customer files of a channel. `may_be_empty`: a shard of a multi-host job, which SageMaker may
    leave without a single object (fewer objects than hosts); that is nothing to do, not an error."""
    if not channel_dir.is_dir():
        if may_be_empty:
            return ChannelInventory(files=[], buckets=[])
        raise NoInputError(f"training channel {channel_dir} does not exist")
    files: list[Path] = []
    buckets: list[Path] = []
    for path in sorted(channel_dir.rglob("*.csv")):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(channel_dir).parts):
            continue
        header = _first_line(path).split(",")
        (buckets if CUSTOMER_COLUMN in header else files).append(path)
    if not files and not buckets and not may_be_empty:
        raise NoInputError(f"no customer CSV files under {channel_dir}")
    return ChannelInventory(files=files, buckets=buckets)


def customer_of_file(path: Path) -> str:
    raw = path.parent.name if path.name == CUSTOMER_FILE else path.stem
    return safe_customer_id(raw)


# datetime64[ns] (Prophet's resolution) holds this span; a timestamp outside it is a bad row.
_NS_SPAN = tuple(np.datetime64(bound, "s") for bound in TIMESTAMP_SPAN)


def parse_timestamps(raw: pd.Series) -> np.ndarray:
    """ISO 8601 text as naive UTC datetime64[ns]; NaT where it does not parse or lies outside that span."""
    stamps = pd.to_datetime(raw, format="ISO8601", errors="coerce", utc=True).dt.tz_localize(None).to_numpy()
    inside = (stamps >= _NS_SPAN[0]) & (stamps < _NS_SPAN[1])
    return np.where(inside, stamps, np.datetime64("NaT")).astype("datetime64[ns]")


@dataclass(frozen=True)
class Rows:
    """A customer's rows as read: NaT where a timestamp did not parse, NaN where a value did not."""

    ds: np.ndarray  # datetime64[ns]
    y: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class History(Rows):
    """A customer's usable rows: valid timestamps and finite values, sorted by time (stable)."""

    @property
    def ds_ns(self) -> np.ndarray:
        return self.ds.view(np.int64)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"ds": self.ds, "y": self.y})


def read_customer_file(path: Path, max_rows: int = 0) -> Rows:
    """Rows of a one-customer file, in whichever of the two layouts it is.

    With `max_rows`, at most `max_rows + 1` rows are ever parsed: one more means the customer is too big.
    Plain files (ISO dates without time zones, plain numbers) take a fast numpy path; anything else is
    read by pandas, and both give the same rows.
    """
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        # Under a cap, never more than cap + 2 lines (a header and one row too many) are read.
        lines = handle.read().split("\n") if not max_rows else list(itertools.islice(handle, max_rows + 2))
    if max_rows:
        lines = [line.rstrip("\n") for line in lines]
    first = lines[0].split(",")[0].strip().lower() if lines else ""
    # A plain timestamp is data, our own header is a header; anything else is one unless pandas reads a date.
    has_header = first == TIME_COLUMN or (
        not _PLAIN_STAMP.fullmatch(first)
        and pd.isna(pd.to_datetime(first, format="ISO8601", errors="coerce"))
    )
    body = lines[1:] if has_header else lines
    while body and body[-1] in ("", "\r"):
        body.pop()
    if max_rows and len(body) > max_rows:
        raise TooManyRowsError(max_rows, f"more than {max_rows}")
    rows = _plain_rows(body)
    return rows if rows is not None else _pandas_rows(path, has_header, max_rows)


# What the fast path reads: ISO 8601 local times (numpy parses exactly these as pandas does) and plain
# decimal numbers. numpy silently wraps around outside datetime64[ns]'s range, so the years are checked too.
_PLAIN_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?")
_PLAIN_NUMBER_CHARS = frozenset("0123456789.-+eE")
_NS_YEARS = ("1678", "2261")  # whole years inside datetime64[ns]


def _plain_rows(lines: list[str]) -> Rows | None:
    """The rows, if every line is `<ISO local timestamp>,<plain number>[,...]`; else None (pandas reads)."""
    stamps, values = [], []
    for line in lines:
        fields = line.rstrip("\r").split(",", 2)
        if len(fields) < 2:
            return None
        stamps.append(fields[0])
        values.append(fields[1])
    if not stamps:
        return None
    if min(stamps)[:4] < _NS_YEARS[0] or max(stamps)[:4] > _NS_YEARS[1]:
        return None
    if not all(map(_PLAIN_STAMP.fullmatch, stamps)) or not set("".join(values)) <= _PLAIN_NUMBER_CHARS:
        return None
    try:
        ds = np.array(stamps, dtype="datetime64[ns]")
        y = np.array(values, dtype=np.float64)
    except ValueError:  # e.g. month 13, or "1.2.3": pandas decides what those are
        return None
    return Rows(ds=ds, y=y)


def _pandas_rows(path: Path, has_header: bool, max_rows: int) -> Rows:
    frame = pd.read_csv(
        path,
        header=0 if has_header else None,
        usecols=[0, 1],
        names=["ds", "y"],
        dtype={"ds": str},
        engine="c",
        nrows=max_rows + 1 if max_rows else None,
    )
    if max_rows and len(frame) > max_rows:
        raise TooManyRowsError(max_rows, f"more than {max_rows}")
    return Rows(
        ds=parse_timestamps(frame["ds"]),
        y=pd.to_numeric(frame["y"], errors="coerce").to_numpy(dtype=np.float64),
    )


def bucket_customer_count(bucket: Path) -> int:
    ids = pd.read_csv(bucket, usecols=[CUSTOMER_COLUMN], dtype=str)[CUSTOMER_COLUMN]
    return int(ids.dropna().nunique())


def iter_bucket_tasks(bucket: Path) -> Iterator[CustomerTask]:
    frame = pd.read_csv(
        bucket,
        usecols=[CUSTOMER_COLUMN, TIME_COLUMN, VALUE_COLUMN],
        dtype={CUSTOMER_COLUMN: str},
    )
    frame = frame.dropna(subset=[CUSTOMER_COLUMN])
    stamps = parse_timestamps(frame[TIME_COLUMN])
    values = pd.to_numeric(frame[VALUE_COLUMN], errors="coerce").to_numpy(dtype=np.float64)
    for raw_id, index in frame.groupby(CUSTOMER_COLUMN, sort=True).indices.items():
        yield CustomerTask(
            customer=safe_customer_id(str(raw_id)), timestamps=stamps[index], values=values[index]
        )


def load_task_rows(task: CustomerTask) -> Rows:
    if task.path is not None:
        return read_customer_file(task.path, task.max_rows)
    if task.max_rows and len(task.values) > task.max_rows:
        raise TooManyRowsError(task.max_rows, str(len(task.values)))
    return Rows(
        ds=np.asarray(task.timestamps, dtype="datetime64[ns]"), y=np.asarray(task.values, dtype=float)
    )


def clean_history(rows: Rows) -> tuple[History, int]:
    """Sorted rows with a timestamp and a finite value; also how many rows were dropped."""
    valid = ~np.isnat(rows.ds) & np.isfinite(rows.y)
    ds, y = rows.ds[valid], rows.y[valid]
    if len(ds) > 1 and np.any(ds[1:] < ds[:-1]):
        order = np.argsort(ds, kind="stable")
        ds, y = ds[order], y[order]
    return History(ds=ds, y=y), int(len(valid) - np.count_nonzero(valid))


def data_fingerprint(history: History) -> str:
    digest = hashlib.sha256()
    digest.update(history.ds_ns.tobytes())
    digest.update(history.y.tobytes())
    return digest.hexdigest()
