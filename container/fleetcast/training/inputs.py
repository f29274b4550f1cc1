"""Finding customers in a training channel, in any of the three layouts of `fleetcast.data.layout`.

A task is what one worker fits: a customer and either the file to read or the rows themselves, and the
most rows it may have (`max_rows_per_customer`): a bigger customer fails before it is read whole.

Regressors (the `regressors` hyperparameter) are extra numeric columns: found by name in a file with a
header (folder layout, buckets, flat files with a header), and in the configured order after the value
in a flat file without one. A value that is missing or not a number makes its row a bad row, dropped and
counted like a row without a valid timestamp or value. A configured regressor the input lacks is an
error naming it.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fleetcast.data.customer_ids import safe_customer_id
from fleetcast.data.layout import CUSTOMER_COLUMN, CUSTOMER_FILE, TIME_COLUMN, TIMESTAMP_SPAN, VALUE_COLUMN


class NoInputError(Exception):
    """The channel holds nothing to train on."""


class MissingColumnError(ValueError):
    """A regressor the configuration names is not a column of the input."""

    def __init__(self, source: Path, missing: list[str], columns: list[str]) -> None:
        super().__init__(
            f"{source} has no column {', '.join(map(repr, missing))} (columns: {', '.join(columns)}); "
            "the regressors hyperparameter names columns every input file must have"
        )


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
    regressors: tuple[str, ...] = ()  # the columns to read besides timestamp and value
    # bucket layout: each regressor's values, row for row with `values`
    regressor_values: dict[str, np.ndarray] = field(default_factory=dict)


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
    regressors: dict[str, np.ndarray] = field(default_factory=dict)  # float64, NaN where missing

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class History(Rows):
    """A customer's usable rows: valid timestamps and finite values, sorted by time (stable)."""

    @property
    def ds_ns(self) -> np.ndarray:
        return self.ds.view(np.int64)

    def window(self, start: int, end: int) -> History:
        """Rows start..end-1, regressors included (a training prefix, a holdout, a CV fold)."""
        regressors = {name: values[start:end] for name, values in self.regressors.items()}
        return History(ds=self.ds[start:end], y=self.y[start:end], regressors=regressors)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"ds": self.ds, "y": self.y, **self.regressors})


def read_customer_file(path: Path, max_rows: int = 0, regressors: tuple[str, ...] = ()) -> Rows:
    """Rows of a one-customer file, in whichever of the two layouts it is, with the `regressors` columns.

    With `max_rows`, at most `max_rows + 1` rows are ever parsed: one more means the customer is too big.
    Plain files (ISO dates without time zones, plain numbers) without regressors take a fast numpy path;
    anything else is read by pandas, and both give the same rows.
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
    if regressors:
        header = [name.strip() for name in lines[0].rstrip("\r").split(",")] if has_header else None
        return _pandas_rows(path, has_header, max_rows, _regressor_columns(path, header, regressors, body))
    rows = _plain_rows(body)
    return rows if rows is not None else _pandas_rows(path, has_header, max_rows)


def _regressor_columns(
    path: Path, header: list[str] | None, regressors: tuple[str, ...], body: list[str]
) -> dict[str, int]:
    """Each regressor's column position: by name under a header, else in the configured order after the
    value (a headerless flat file)."""
    if header is not None:
        missing = [name for name in regressors if name not in header]
        if missing:
            raise MissingColumnError(path, missing, header)
        return {name: header.index(name) for name in regressors}
    width = len(body[0].split(",")) if body else 0
    if width < 2 + len(regressors):
        raise MissingColumnError(
            path, list(regressors[max(width - 2, 0) :]), [f"{width} unnamed (no header)"]
        )
    return {name: 2 + position for position, name in enumerate(regressors)}


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


def _pandas_rows(path: Path, has_header: bool, max_rows: int, extra: dict[str, int] | None = None) -> Rows:
    extra = extra or {}
    if extra:
        positions = [0, 1, *extra.values()]
        frame = pd.read_csv(
            path,
            header=None,
            skiprows=1 if has_header else 0,
            usecols=positions,
            dtype={0: str},
            engine="c",
            nrows=max_rows + 1 if max_rows else None,
        )
        frame = frame[positions]  # pandas gives them in file order
        frame.columns = ["ds", "y", *extra]
    else:
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
        regressors={name: _numbers(frame[name]) for name in extra},
    )


def _numbers(column: pd.Series) -> np.ndarray:
    """A column as float64, NaN where a value is missing or not a number (those rows are dropped)."""
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)


def bucket_customer_count(bucket: Path) -> int:
    ids = pd.read_csv(bucket, usecols=[CUSTOMER_COLUMN], dtype=str)[CUSTOMER_COLUMN]
    return int(ids.dropna().nunique())


def iter_bucket_tasks(bucket: Path, regressors: tuple[str, ...] = ()) -> Iterator[CustomerTask]:
    if regressors:
        header = [name.strip() for name in _first_line_raw(bucket).split(",")]
        missing = [name for name in regressors if name not in header]
        if missing:
            raise MissingColumnError(bucket, missing, header)
    frame = pd.read_csv(
        bucket,
        usecols=[CUSTOMER_COLUMN, TIME_COLUMN, VALUE_COLUMN, *regressors],
        dtype={CUSTOMER_COLUMN: str},
    )
    frame = frame.dropna(subset=[CUSTOMER_COLUMN])
    stamps = parse_timestamps(frame[TIME_COLUMN])
    values = pd.to_numeric(frame[VALUE_COLUMN], errors="coerce").to_numpy(dtype=np.float64)
    extra = {name: _numbers(frame[name]) for name in regressors}
    for raw_id, index in frame.groupby(CUSTOMER_COLUMN, sort=True).indices.items():
        yield CustomerTask(
            customer=safe_customer_id(str(raw_id)),
            timestamps=stamps[index],
            values=values[index],
            regressors=regressors,
            regressor_values={name: column[index] for name, column in extra.items()},
        )


def _first_line_raw(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.readline().rstrip("\r\n")


def load_task_rows(task: CustomerTask) -> Rows:
    if task.path is not None:
        return read_customer_file(task.path, task.max_rows, task.regressors)
    if task.max_rows and len(task.values) > task.max_rows:
        raise TooManyRowsError(task.max_rows, str(len(task.values)))
    return Rows(
        ds=np.asarray(task.timestamps, dtype="datetime64[ns]"),
        y=np.asarray(task.values, dtype=float),
        regressors={name: np.asarray(task.regressor_values[name], dtype=float) for name in task.regressors},
    )


def clean_history(rows: Rows) -> tuple[History, int]:
    """Sorted rows with a timestamp, a finite value and every regressor's value; also how many rows were
    dropped."""
    valid = ~np.isnat(rows.ds) & np.isfinite(rows.y)
    for values in rows.regressors.values():
        valid &= np.isfinite(values)
    ds, y = rows.ds[valid], rows.y[valid]
    regressors = {name: values[valid] for name, values in rows.regressors.items()}
    if len(ds) > 1 and np.any(ds[1:] < ds[:-1]):
        order = np.argsort(ds, kind="stable")
        ds, y = ds[order], y[order]
        regressors = {name: values[order] for name, values in regressors.items()}
    return History(ds=ds, y=y, regressors=regressors), int(len(valid) - np.count_nonzero(valid))


def data_fingerprint(history: History) -> str:
    digest = hashlib.sha256()
    digest.update(history.ds_ns.tobytes())
    digest.update(history.y.tobytes())
    for name, values in history.regressors.items():  # none: the digest of the plain rows, as before
        digest.update(name.encode())
        digest.update(values.tobytes())
    return digest.hexdigest()
