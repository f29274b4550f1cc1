"""The Processing step: raw consumption CSVs -> one time-sorted file per customer, or N bucket files.

Input: CSV files (or folders of them, searched recursively for *.csv and *.csv.gz) with at least the
columns `customer_id,timestamp,consumption`; extra columns are ignored.

Output, default layout: `<out>/<customer>/data.csv` with header `timestamp,consumption`, rows sorted by
time. With `buckets=N`: `<out>/part-00000.csv` ... holding whole customers (header
`customer_id,timestamp,consumption`, rows sorted by (customer, time)); customer -> part is
`crc32(utf-8 customer name) % N`, stable across runs and machines; customers are
in code-point order of their names. Empty parts are not written, so every part file
holds at least one customer (fewer than N files when there are fewer customers than buckets).
Both layouts end with `<out>/split_summary.json` (written last: its presence means the split finished).

Two passes keep memory bounded whatever the input size:
1. Read each input in chunks of `chunk_rows` rows, parse and validate them, and append the valid rows as
   20-byte binary records (customer number, time, value) to one of S spool files chosen by a stable hash
   of the customer, so all of a customer's rows land in the same spool. S grows with the input size
   (about `spool_rows` rows per spool), and each chunk opens, appends to and closes only the spools it
   touches: no file handle is held per customer, which matters for a million customers.
2. Load one spool at a time, sort it by (customer, time) and write each customer's file atomically.

Memory: pass 1 holds one chunk; pass 2 holds one spool, i.e. about `spool_rows` rows, or more when a
single customer is larger than that (memory is bounded by the largest customer, never by the input).
The table of customer ids grows with the number of customers (~250 bytes each, ~250 MB for a million).

Rows are dropped, counted by reason and reported, never silently: a line with more fields than the
header, an empty customer id, an unparseable timestamp, a consumption that is not a finite number, a
negative consumption. A row with several problems is counted once, under the first reason in that order.
Timestamps are parsed as ISO 8601; tz-aware ones are converted to UTC and made naive; the output format is
`YYYY-MM-DD HH:MM:SS` (sub-second parts are truncated after sorting).

Customer ids are stripped of surrounding blanks and made safe to use as a folder or S3 key name by
`fleetcast.data.customer_ids.safe_customer_id` (the sanitiser train uses too): safe ids are kept, others
become `<cleaned>--<16 hex digits of blake2b(id)>`. An id spelled like one of split's own top-level files
gets the same kind of suffix. Two different raw ids never share a name (checked as ids are registered).
Renamed ids are listed in the summary (and in `split_renamed_ids.jsonl`). Names are case-sensitive.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import signal
import sys
import threading
import time
import warnings
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from fleetcast.data.customer_ids import safe_customer_id
from fleetcast.data.layout import (
    BUCKET_HEADER,
    CUSTOMER_COLUMN,
    CUSTOMER_FILE,
    CUSTOMER_HEADER,
    INPUT_COLUMNS,
    TIME_COLUMN,
    VALUE_COLUMN,
)
from fleetcast.paths import SageMakerPaths

log = logging.getLogger(__name__)

SUMMARY_FILE = "split_summary.json"
RENAMED_IDS_FILE = "split_renamed_ids.jsonl"
WORK_DIR = ".split-work"  # spools live next to the output: same volume, removed at the end
RESERVED_NAMES = frozenset({SUMMARY_FILE, RENAMED_IDS_FILE})  # a customer folder must not take these

# In the order a row's first problem is attributed.
DROP_REASONS = (
    "malformed_line",
    "empty_customer_id",
    "bad_timestamp",
    "consumption_not_a_number",
    "negative_consumption",
)

SPOOL_ROWS = 2_000_000  # rows per spool file on average: what pass 2 holds in memory
MAX_SPOOLS = 4096
MAX_INLINE_RENAMED = 10_000  # beyond this, the summary points to the renamed-ids file only
PROGRESS_SECONDS = 10.0
GZIP_EXPANSION = 5.0  # rough size ratio of a CSV to its gzip, and line length, for sizing the spools
GZIP_LINE_BYTES = 32.0

# One valid row in a spool: customer number (index into the customer table), microseconds since the
# epoch (UTC, naive), value. Packed: 20 bytes a row.
RECORD = np.dtype([("customer", "<i4"), ("time", "<i8"), ("value", "<f8")])


class SplitError(Exception):
    """Bad input or output location: the message says what to fix."""


def bucket_of(name: str, buckets: int) -> int:
    """The part file a customer goes to: stable across runs, processes and machines (not `hash()`)."""
    return zlib.crc32(name.encode("utf-8")) % buckets


def _spool_hash(name: str) -> int:
    # Independent of crc32, so the spools inside one bucket are evenly used.
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "little")


def part_name(bucket: int) -> str:
    return f"part-{bucket:05d}.csv"


# --------------------------------------------------------------------------------------------- inputs


def find_inputs(paths: Sequence[Path]) -> list[Path]:
    """Input files: files as given, folders searched recursively (hidden names skipped), in sorted order."""
    files: list[Path] = []
    for path in paths:
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and (p.name.endswith(".csv") or p.name.endswith(".csv.gz"))
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise SplitError(f"no *.csv or *.csv.gz files under {path}")
            files.extend(found)
        else:
            raise SplitError(f"input {path} does not exist")
    if not files:
        raise SplitError("no input files given")
    unique = {
        p.resolve(): p for p in reversed(files)
    }  # a file named twice (e.g. also via its folder) is read once
    return [p for p in files if unique.get(p.resolve()) is p]


# Compression from the name (.gz); a byte-order mark, as spreadsheets write one, is tolerated.
READ_OPTIONS = {"compression": "infer", "encoding": "utf-8-sig"}


@dataclass(frozen=True)
class Header:
    columns: list[str]  # as the file spells them
    required: dict[str, str]  # our name -> the file's name (blanks around names are tolerated)


def check_header(path: Path) -> Header:
    """The file's columns; fails with a message naming the missing column(s) before any output exists."""
    try:
        columns = pd.read_csv(path, nrows=0, **READ_OPTIONS).columns
    except pd.errors.EmptyDataError:
        raise SplitError(
            f"{path}: the file is empty; expected a header line {','.join(INPUT_COLUMNS)}"
        ) from None
    except (UnicodeDecodeError, pd.errors.ParserError, OSError) as exc:
        raise SplitError(f"{path}: cannot read the header: {exc}") from None
    present: dict[str, str] = {}
    for column in columns:
        present.setdefault(str(column).strip(), str(column))
    missing = [c for c in INPUT_COLUMNS if c not in present]
    if missing:
        found = ", ".join(str(c) for c in columns) or "(none)"
        raise SplitError(
            f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(found: {found}; the header must contain {','.join(INPUT_COLUMNS)})"
        )
    return Header(columns=[str(c) for c in columns], required={c: present[c] for c in INPUT_COLUMNS})


def estimate_rows(files: Sequence[Path]) -> int:
    """A rough row count from file sizes and the average line length of each file's start."""
    total = 0.0
    for path in files:
        size = path.stat().st_size
        if path.name.endswith(".gz"):
            total += size * GZIP_EXPANSION / GZIP_LINE_BYTES
            continue
        with open(path, "rb") as handle:
            head = handle.read(1 << 16)
        total += size / max(len(head) / max(head.count(b"\n"), 1), 1.0)
    return int(total)


# ------------------------------------------------------------------------------------ customer table


@dataclass
class CustomerTable:
    """Raw id -> customer number; each customer's safe name and spool. Grows with customers, not rows."""

    buckets: int  # 0: one folder per customer
    spools_per_bucket: int
    numbers: dict[str, int] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    spools: list[int] = field(default_factory=list)
    raw_of_renamed: dict[str, str] = field(default_factory=dict)  # safe name -> raw id, renamed ids only

    @property
    def renamed(self) -> dict[str, str]:
        """Raw id -> safe name, for the ids that had to change."""
        return {raw: name for name, raw in self.raw_of_renamed.items()}

    def spool_of(self, name: str) -> int:
        if self.buckets:
            sub = _spool_hash(name) % self.spools_per_bucket
            return bucket_of(name, self.buckets) * self.spools_per_bucket + sub
        return _spool_hash(name) % self.spools_per_bucket

    def lookup(self, raw_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Customer numbers and spools of distinct raw ids, registering new ones."""
        numbers = np.empty(len(raw_ids), dtype=np.int32)
        spools = np.empty(len(raw_ids), dtype=np.int32)
        for i, raw in enumerate(raw_ids.tolist()):
            number = self.numbers.get(raw)
            if number is None:
                number = self._register(raw)
            numbers[i] = number
            spools[i] = self.spools[number]
        return numbers, spools

    def _register(self, raw: str) -> int:
        name = safe_customer_id(raw)
        if name in RESERVED_NAMES:  # a folder with this name would take the place of split's own file
            digest = hashlib.blake2b(raw.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
            name = f"{name}--{digest}"
        # Two raw ids must never share a name, whatever the sanitiser's rules: check both directions
        # (a renamed id landing on a kept id, and a kept id landing on a renamed one), in any order.
        if name != raw:
            owner = self.raw_of_renamed.setdefault(name, raw)
            kept = self.numbers.get(name)
            if owner != raw or (kept is not None and self.names[kept] == name):
                other = owner if owner != raw else name
                raise SplitError(f"customer ids {other!r} and {raw!r} map to the same name {name!r}")
        elif name in self.raw_of_renamed:
            other = self.raw_of_renamed[name]
            raise SplitError(f"customer ids {other!r} and {raw!r} map to the same name {name!r}")
        number = len(self.names)
        self.numbers[raw] = number
        self.names.append(name)
        self.spools.append(self.spool_of(name))
        return number


# ----------------------------------------------------------------------------------------- pass 1


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


def _chunks(path: Path, header: Header, chunk_rows: int, counters: Counters) -> Iterator[pd.DataFrame]:
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


class Spooler:
    """Appends records to spool files, opening each only while writing one chunk's share."""

    def __init__(self, work: Path, count: int) -> None:
        self.paths = [work / f"spool-{i:05d}.bin" for i in range(count)]

    def append(self, spools: np.ndarray, records: np.ndarray) -> None:
        order = np.argsort(spools, kind="stable")
        spools, records = spools[order], records[order]
        cuts = np.flatnonzero(np.diff(spools)) + 1
        for start, stop in zip(np.r_[0, cuts], np.r_[cuts, len(spools)], strict=True):
            with open(self.paths[spools[start]], "ab") as handle:
                handle.write(records[start:stop].tobytes())

    def load(self, index: int) -> np.ndarray:
        path = self.paths[index]
        if not path.exists():
            return np.empty(0, dtype=RECORD)
        records = np.fromfile(path, dtype=RECORD)
        path.unlink()  # free the disk as we go
        return records


# ----------------------------------------------------------------------------------------- pass 2


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
    starts, stops = _group_bounds(customers)
    for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        number = int(customers[start])
        pairs = zip(times[start:stop].tolist(), values[start:stop].tolist(), strict=True)
        if names is None:
            text = "".join([f"{t},{v!r}\n" for t, v in pairs])
        else:
            prefix = names[number]
            text = "".join([f"{prefix},{t},{v!r}\n" for t, v in pairs])
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


@dataclass
class Progress:
    began: float = field(default_factory=time.perf_counter)
    last: float = field(default_factory=time.perf_counter)

    def due(self) -> bool:
        now = time.perf_counter()
        if now - self.last >= PROGRESS_SECONDS:
            self.last = now
            return True
        return False

    def elapsed(self) -> float:
        return max(time.perf_counter() - self.began, 1e-9)


# ------------------------------------------------------------------------------------------ driver


@dataclass
class SplitResult:
    summary: dict
    customers: int


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise SplitError(f"output {out} exists and is not a folder")
    if out.is_dir():
        entries = sorted(p.name for p in out.iterdir())
        if entries:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise SplitError(
                f"output folder {out} is not empty ({len(entries)} entries: {shown}); split writes into an "
                "empty folder so no stale customer survives from an earlier run: remove it or pick another"
            )
    out.mkdir(parents=True, exist_ok=True)


def split(
    inputs: Sequence[Path],
    out: Path,
    buckets: int = 0,
    chunk_rows: int = 500_000,
    spool_rows: int = SPOOL_ROWS,
) -> SplitResult:
    """Run both passes; raises SplitError for input the person must fix."""
    if buckets < 0:
        raise SplitError(f"--buckets must be 0 (one folder per customer) or a positive count, not {buckets}")
    if chunk_rows < 1:
        raise SplitError(f"--chunk-rows must be at least 1, not {chunk_rows}")
    began = time.perf_counter()
    files = find_inputs(inputs)
    headers = [check_header(path) for path in files]
    _prepare_out(out)

    wanted_spools = min(MAX_SPOOLS, max(1, math.ceil(estimate_rows(files) / max(spool_rows, 1))))
    per_bucket = math.ceil(wanted_spools / buckets) if buckets else wanted_spools
    table = CustomerTable(buckets=buckets, spools_per_bucket=per_bucket)
    spool_count = (buckets or 1) * per_bucket
    work = out / WORK_DIR
    work.mkdir()
    counters = Counters()
    log.info(
        "split: %d input file(s), %s layout, %d spool file(s), %d rows per chunk",
        len(files),
        f"{buckets} buckets" if buckets else "one folder per customer",
        spool_count,
        chunk_rows,
    )
    try:
        spooler = Spooler(work, spool_count)
        _spool_inputs(files, headers, chunk_rows, table, spooler, counters)
        if buckets:
            parts = _write_buckets(out, work, table, spooler, counters, buckets, per_bucket)
        else:
            parts = 0
            _write_customers(out, table, spooler, counters)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    seconds = time.perf_counter() - began
    summary = _summary(files, table, counters, buckets, parts, spool_count, chunk_rows, seconds)
    if table.raw_of_renamed:
        renamed_lines = "".join(
            json.dumps({"raw": raw, "name": name}, ensure_ascii=False) + "\n"
            for raw, name in table.renamed.items()
        )
        write_atomic(out / RENAMED_IDS_FILE, renamed_lines)
    write_atomic(out / SUMMARY_FILE, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return SplitResult(summary=summary, customers=len(table.names))


def _spool_inputs(
    files: Sequence[Path],
    headers: Sequence[Header],
    chunk_rows: int,
    table: CustomerTable,
    spooler: Spooler,
    counters: Counters,
) -> None:
    progress = Progress()
    for path, header in zip(files, headers, strict=True):
        for frame in _chunks(path, header, chunk_rows, counters):
            distinct, codes, micros, values = parse_chunk(frame, counters)
            if len(codes) == 0:
                continue
            numbers, spools = table.lookup(distinct)
            records = np.empty(len(codes), dtype=RECORD)
            records["customer"] = numbers[codes]
            records["time"] = micros
            records["value"] = values
            spooler.append(spools[codes], records)
            if progress.due():
                log.info(
                    "split: read %d rows (%.0f rows/s), %d customers so far, %d dropped, now %s",
                    counters.rows_read,
                    counters.rows_read / progress.elapsed(),
                    len(table.names),
                    counters.rows_dropped,
                    path.name,
                )
    log.info(
        "split: read %d rows from %d file(s) in %.1fs (%.0f rows/s): %d customers, %d dropped",
        counters.rows_read,
        len(files),
        progress.elapsed(),
        counters.rows_read / progress.elapsed(),
        len(table.names),
        counters.rows_dropped,
    )
    if counters.rows_dropped:
        reasons = ", ".join(f"{k} {v}" for k, v in counters.dropped.items() if v)
        log.warning("split: dropped %d rows: %s", counters.rows_dropped, reasons)
    for example in counters.malformed_examples:
        log.warning("split: malformed line: %s", example)


def _write_customers(out: Path, table: CustomerTable, spooler: Spooler, counters: Counters) -> None:
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
            folder = out / table.names[number]
            folder.mkdir()
            write_atomic(folder / CUSTOMER_FILE, CUSTOMER_HEADER.encode("utf-8") + block)
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


def _write_buckets(
    out: Path,
    work: Path,
    table: CustomerTable,
    spooler: Spooler,
    counters: Counters,
    buckets: int,
    per_bucket: int,
) -> int:
    progress = Progress()
    ranks = _name_ranks(table.names)
    parts = 0
    for bucket in range(buckets):
        runs: list[tuple[Path, np.ndarray, np.ndarray, np.ndarray]] = []
        for sub in range(per_bucket):
            records = spooler.load(bucket * per_bucket + sub)
            if len(records) == 0:
                continue
            records = _sorted(records, ranks)
            counters.duplicate_timestamps += _count_duplicates(records)
            counters.rows_written += len(records)
            runs.append(_write_run(work / f"run-{bucket:05d}-{sub:05d}.csv", records, table.names, ranks))
        if not runs:
            continue  # empty parts are not written
        _merge_runs(out / part_name(bucket), runs)
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


def _merge_runs(part: Path, runs: list[tuple[Path, np.ndarray, np.ndarray, np.ndarray]]) -> None:
    """Concatenate the runs' customer blocks in name order into the part file (atomically)."""
    tmp = part.with_name(f".{part.name}.tmp")
    try:
        with open(tmp, "wb") as target:
            target.write(BUCKET_HEADER.encode("utf-8"))
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


def _summary(
    files: Sequence[Path],
    table: CustomerTable,
    counters: Counters,
    buckets: int,
    parts: int,
    spools: int,
    chunk_rows: int,
    seconds: float,
) -> dict:
    renamed = len(table.raw_of_renamed)
    return {
        "format_version": 1,
        "layout": "buckets" if buckets else "customer_folders",
        "buckets": buckets or None,
        "parts_written": parts if buckets else None,
        "inputs": [str(p) for p in files],
        "rows_read": counters.rows_read,
        "rows_written": counters.rows_written,
        "rows_dropped": counters.rows_dropped,
        "dropped": counters.dropped,
        "customers": len(table.names),
        "duplicate_timestamps_kept": counters.duplicate_timestamps,
        "renamed_ids_count": renamed,
        "renamed_ids": table.renamed if 0 < renamed <= MAX_INLINE_RENAMED else None,
        "renamed_ids_file": RENAMED_IDS_FILE if renamed else None,
        "spool_files": spools,
        "chunk_rows": chunk_rows,
        "seconds": round(seconds, 3),
        "rows_per_second": round(counters.rows_read / max(seconds, 1e-9), 1),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _report_failure(message: str, paths: SageMakerPaths) -> None:
    log.error("split failed: %s", message)
    print(f"fleetcast split: error: {message}", file=sys.stderr)
    # In a Processing container (/opt/ml exists), DescribeProcessingJob shows this file as ExitMessage.
    if paths.base.is_dir():
        try:
            paths.output_dir.mkdir(parents=True, exist_ok=True)
            paths.processing_message_file.write_text(message[:1024], encoding="utf-8")
        except OSError:
            pass


@contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """SageMaker stops a job with SIGTERM: exit through `finally` blocks so spools and temp files go."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def split_main(
    inputs: Sequence[Path] | None,
    out: Path | None,
    buckets: int = 0,
    chunk_rows: int = 500_000,
) -> int:
    """The `fleetcast split` command: 0 on success, 2 for input to fix, 1 when no row survived."""
    paths = SageMakerPaths.from_env()
    input_paths = [Path(p) for p in inputs] if inputs else [paths.processing_input_dir]
    out = Path(out) if out is not None else paths.processing_output_dir
    try:
        with _sigterm_as_exit():
            result = split(input_paths, out, buckets=buckets, chunk_rows=chunk_rows)
    except SplitError as exc:
        _report_failure(str(exc), paths)
        return 2
    s = result.summary
    log.info(
        "split done: %d customers, %d rows written, %d dropped of %d read in %.1fs (%.0f rows/s) -> %s",
        s["customers"],
        s["rows_written"],
        s["rows_dropped"],
        s["rows_read"],
        s["seconds"],
        s["rows_per_second"],
        out,
    )
    if s["renamed_ids_count"]:
        log.warning(
            "split: %d customer id(s) were renamed to be safe file names; see %s",
            s["renamed_ids_count"],
            out / RENAMED_IDS_FILE,
        )
    if result.customers == 0:
        _report_failure(f"no valid rows in the input (summary: {out / SUMMARY_FILE})", paths)
        return 1
    return 0
