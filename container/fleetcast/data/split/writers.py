"""The writers: sorted spools -> one `data.csv` per customer, or bucket part files of whole customers.

Every file is written under a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fleetcast.data.layout import CUSTOMER_FILE, bucket_header, customer_header
from fleetcast.data.split import stopping
from fleetcast.data.split.progress import Progress
from fleetcast.data.split.spool import RECORD

if TYPE_CHECKING:
    from fleetcast.data.split.chunks import Counters
    from fleetcast.data.split.customers import CustomerTable
    from fleetcast.data.split.spool import Spooler

log = logging.getLogger(__name__)


def part_name(bucket: int, host: str | None = None) -> str:
    """A bucket's file: `part-NNNNN.csv`, or `part-<host>-NNNNN.csv` in a job with several instances,
    which all upload to one S3 prefix and so must never write the same key."""
    return f"part-{bucket:05d}.csv" if host is None else f"part-{host}-{bucket:05d}.csv"


def _time_text(micros: np.ndarray) -> np.ndarray:
    """`YYYY-MM-DD HH:MM:SS` for each time, formatting each distinct second once."""
    seconds = micros // 1_000_000
    codes, uniques = pd.factorize(seconds)
    iso = np.datetime_as_string(np.asarray(uniques, dtype=np.int64).astype("datetime64[s]"), unit="s")
    text = np.array([t.replace("T", " ") for t in iso.tolist()], dtype=object)
    return text[codes]


def _customer_blocks(records: np.ndarray, names: list[str] | None) -> Iterator[tuple[int, bytes]]:
    """(customer number, its CSV lines) for records sorted by (customer, time).

    Lines are built one customer at a time, so pass 2 never holds a whole spool as Python strings.
    With `names`, each line starts with the customer's name (the bucket layout).
    """
    times = _time_text(records["time"])
    values = records["value"]
    customers = records["customer"]
    extras = [records[name] for name in records.dtype.names[len(RECORD.names) :]]
    starts, stops = _group_bounds(customers)
    for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        number = int(customers[start])
        prefix = "" if names is None else f"{names[number]},"
        if extras:  # consumption, then each kept extra column, all as repr(float)
            columns = [values[start:stop].tolist(), *(extra[start:stop].tolist() for extra in extras)]
            lines = zip(times[start:stop].tolist(), *columns, strict=True)
            text = "".join([f"{prefix}{t},{','.join(map(repr, rest))}\n" for t, *rest in lines])
        else:
            pairs = zip(times[start:stop].tolist(), values[start:stop].tolist(), strict=True)
            text = "".join([f"{prefix}{t},{v!r}\n" for t, v in pairs])
        yield number, text.encode("utf-8")


def _group_bounds(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cuts = np.flatnonzero(np.diff(keys)) + 1
    return np.r_[0, cuts], np.r_[cuts, len(keys)]


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write under a temporary name in the same folder, then rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _sorted(records: np.ndarray, order_key: np.ndarray) -> np.ndarray:
    """Records sorted by (customer order key, time); ties keep their input order."""
    return records[np.lexsort((records["time"], order_key[records["customer"]]))]


def _count_duplicates(records: np.ndarray) -> int:
    same = (np.diff(records["customer"]) == 0) & (np.diff(records["time"] // 1_000_000) == 0)
    return int(same.sum())


def write_customers(
    out: Path, table: CustomerTable, spooler: Spooler, counters: Counters, extras: Sequence[str] = ()
) -> None:
    """Each customer's rows into `out/<name>/data.csv`, one spool at a time."""
    header = customer_header(extras).encode("utf-8")
    progress = Progress()
    identity = np.arange(len(table.names), dtype=np.int64)
    written = 0
    for index in range(len(spooler.paths)):
        records = spooler.load(index)
        if len(records) == 0:
            continue
        records = _sorted(records, identity)
        counters.duplicate_timestamps += _count_duplicates(records)
        for number, block in _customer_blocks(records, names=None):
            stopping.check()
            folder = out / table.names[number]
            folder.mkdir()
            write_atomic(folder / CUSTOMER_FILE, header + block)
            written += 1
            if progress.due():
                log.info(
                    "split: wrote %d/%d customers (%.0f customers/s)",
                    written,
                    len(table.names),
                    written / progress.elapsed(),
                )
        counters.rows_written += len(records)
    log.info("split: wrote %d customer files in %.1fs", written, progress.elapsed())


def _name_ranks(names: list[str]) -> np.ndarray:
    """Each customer's position in the sorted order of names: parts list customers in that order."""
    ranks = np.empty(len(names), dtype=np.int64)
    ranks[np.argsort(np.array(names, dtype=object), kind="stable")] = np.arange(len(names))
    return ranks


def write_buckets(
    out: Path,
    work: Path,
    table: CustomerTable,
    spooler: Spooler,
    counters: Counters,
    buckets: int,
    per_bucket: int,
    host: str | None = None,
    extras: Sequence[str] = (),
) -> int:
    """Bucket b's customers, from its `per_bucket` spools, into `out/part_name(b, host)`; the part count."""
    progress = Progress()
    ranks = _name_ranks(table.names)
    parts = 0
    for bucket in range(buckets):
        runs: list[tuple[Path, np.ndarray, np.ndarray, np.ndarray]] = []
        for sub in range(per_bucket):
            stopping.check()
            records = spooler.load(bucket * per_bucket + sub)
            if len(records) == 0:
                continue
            records = _sorted(records, ranks)
            counters.duplicate_timestamps += _count_duplicates(records)
            counters.rows_written += len(records)
            runs.append(_write_run(work / f"run-{bucket:05d}-{sub:05d}.csv", records, table.names, ranks))
        if not runs:
            continue  # empty parts are not written
        _merge_runs(out / part_name(bucket, host), runs, bucket_header(extras))
        parts += 1
        if progress.due():
            log.info("split: wrote %d parts (bucket %d of %d)", parts, bucket + 1, buckets)
    log.info("split: wrote %d part files in %.1fs", parts, progress.elapsed())
    return parts


def _write_run(
    path: Path, records: np.ndarray, names: list[str], ranks: np.ndarray
) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    """One sorted spool as CSV lines, plus each customer's rank, byte offset and byte length in it."""
    customer_ranks, offsets, lengths = [], [], []
    position = 0
    with open(path, "wb") as handle:
        for number, block in _customer_blocks(records, names=names):
            handle.write(block)
            customer_ranks.append(ranks[number])
            offsets.append(position)
            lengths.append(len(block))
            position += len(block)
    return path, np.array(customer_ranks), np.array(offsets), np.array(lengths)


def _merge_runs(part: Path, runs: list[tuple[Path, np.ndarray, np.ndarray, np.ndarray]], header: str) -> None:
    """Concatenate the runs' customer blocks in name order into the part file (atomically)."""
    tmp = part.with_name(f".{part.name}.tmp")
    try:
        with open(tmp, "wb") as target:
            target.write(header.encode("utf-8"))
            if len(runs) == 1:  # one sorted run is already the whole part in order
                with open(runs[0][0], "rb") as source:
                    shutil.copyfileobj(source, target)
            else:
                which = np.concatenate([np.full(len(r[1]), i) for i, r in enumerate(runs)])
                ranks = np.concatenate([r[1] for r in runs])
                offsets = np.concatenate([r[2] for r in runs])
                lengths = np.concatenate([r[3] for r in runs])
                sources = [open(r[0], "rb") for r in runs]  # noqa: SIM115 - closed below
                try:
                    for i in np.argsort(ranks, kind="stable").tolist():
                        source = sources[which[i]]
                        source.seek(offsets[i])
                        target.write(source.read(lengths[i]))
                finally:
                    for source in sources:
                        source.close()
        os.replace(tmp, part)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        for run in runs:
            run[0].unlink(missing_ok=True)
