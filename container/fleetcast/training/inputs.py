"""Finding customers in a training channel, in any of the three layouts fleetcast accepts.

- `<customer>/data.csv` with header `timestamp,consumption` (what `fleetcast split` writes);
- flat `<customer>.csv` without a header (the AWS blog sample's splitter output);
- bucket files holding many whole customers, header `customer_id,timestamp,consumption`
  (`fleetcast split --buckets`).
A task is what one worker fits: a customer and either the file to read or the rows themselves, and the
most rows it may have (`max_rows_per_customer`): a bigger customer fails before it is read whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fleetcast.data.customer_ids import safe_customer_id

FOLDER_FILE = "data.csv"
BUCKET_COLUMN = "customer_id"


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


def scan_channel(channel_dir: Path) -> ChannelInventory:
    if not channel_dir.is_dir():
        raise NoInputError(f"training channel {channel_dir} does not exist")
    files: list[Path] = []
    buckets: list[Path] = []
    for path in sorted(channel_dir.rglob("*.csv")):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(channel_dir).parts):
            continue
        header = _first_line(path).split(",")
        (buckets if BUCKET_COLUMN in header else files).append(path)
    if not files and not buckets:
        raise NoInputError(f"no customer CSV files under {channel_dir}")
    return ChannelInventory(files=files, buckets=buckets)


def customer_of_file(path: Path) -> str:
    raw = path.parent.name if path.name == FOLDER_FILE else path.stem
    return safe_customer_id(raw)


def parse_timestamps(raw: pd.Series) -> pd.Series:
    stamps = pd.to_datetime(raw, format="ISO8601", errors="coerce", utc=True)
    return stamps.dt.tz_localize(None).astype("datetime64[ns]")


def read_customer_file(path: Path, max_rows: int = 0) -> pd.DataFrame:
    """Rows of a one-customer file as `ds`/`y`, in whichever of the two layouts it is.

    With `max_rows`, at most `max_rows + 1` rows are ever parsed: one more means the customer is too big.
    """
    first = _first_line(path).split(",")[0]
    has_header = pd.isna(pd.to_datetime(first, format="ISO8601", errors="coerce"))
    frame = pd.read_csv(
        path,
        header=0 if has_header else None,
        usecols=[0, 1],
        names=["ds", "y"],
        dtype={"ds": str},
        skiprows=0,
        engine="c",
        nrows=max_rows + 1 if max_rows else None,
    )
    if max_rows and len(frame) > max_rows:
        raise TooManyRowsError(max_rows, f"more than {max_rows}")
    return frame.assign(ds=parse_timestamps(frame["ds"]), y=pd.to_numeric(frame["y"], errors="coerce"))


def bucket_customer_count(bucket: Path) -> int:
    ids = pd.read_csv(bucket, usecols=[BUCKET_COLUMN], dtype=str)[BUCKET_COLUMN]
    return int(ids.dropna().nunique())


def iter_bucket_tasks(bucket: Path) -> Iterator[CustomerTask]:
    frame = pd.read_csv(
        bucket, usecols=[BUCKET_COLUMN, "timestamp", "consumption"], dtype={BUCKET_COLUMN: str}
    )
    frame = frame.dropna(subset=[BUCKET_COLUMN])
    stamps = parse_timestamps(frame["timestamp"]).to_numpy()
    values = pd.to_numeric(frame["consumption"], errors="coerce").to_numpy(dtype=np.float64)
    for raw_id, index in frame.groupby(BUCKET_COLUMN, sort=True).indices.items():
        yield CustomerTask(
            customer=safe_customer_id(str(raw_id)), timestamps=stamps[index], values=values[index]
        )


def load_task_frame(task: CustomerTask) -> pd.DataFrame:
    if task.path is not None:
        return read_customer_file(task.path, task.max_rows)
    if task.max_rows and len(task.values) > task.max_rows:
        raise TooManyRowsError(task.max_rows, str(len(task.values)))
    return pd.DataFrame({"ds": task.timestamps, "y": task.values})


def clean_history(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Sorted rows with a timestamp and a finite value; also how many rows were dropped."""
    valid = frame["ds"].notna() & np.isfinite(frame["y"].to_numpy(dtype=np.float64))
    history = frame.loc[valid, ["ds", "y"]].sort_values("ds", kind="stable").reset_index(drop=True)
    return history, int((~valid).sum())


def data_fingerprint(history: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    digest.update(history["ds"].to_numpy(dtype="datetime64[ns]").view(np.int64).tobytes())
    digest.update(history["y"].to_numpy(dtype=np.float64).tobytes())
    return digest.hexdigest()
