"""The fleet manifest: the one record of which model version serves each customer.

A manifest is a gzipped CSV sorted by customer, one row per customer: the `TargetModel` that serves it
(`<run>/<customer>.tar.gz`, relative to the models prefix), the run that trained it, the hashes that say
whether it is still current (its data, its settings, the archive format) and its holdout metrics. Sorted
rows make merging a stream (no manifest is ever held whole to merge it) and let a reader stop early.

Where the files live, under the models prefix (the endpoint's ModelDataUrl):

    manifest.csv.gz                  the fleet manifest: what serves now
    <run>/<customer>.tar.gz          the archives a run trained (its checkpoint folder)
    <run>/manifest-<host>.csv.gz     one per training host: every customer it handled, trained or kept
    <run>/manifest.csv.gz            the fleet manifest as that run published it (kept for rollback)

`train` writes the host files; `fleetcast manifest merge` (run by `local-train` and `launch train --wait`)
merges them over the previous fleet manifest: a customer the run handled takes the run's row, every other
customer keeps its row.

Why sorted CSV.gz at gzip level 1, measured by bench/scale.py at 1,000,000 customers (rows as varied as
real ones): 68.0 MB, against 70.2 MB as gzipped JSON lines and 52.1 MB as Parquet (zstd, pyarrow 26, a
development dependency only); loaded into rows in 9.5 s, against 14.1 s from Parquet and 23.2 s from JSON
lines (the cost is making a million Python rows, not parsing); level 1 wrote in half the time of level 6
for 6 % more bytes. Parquet's 16 MB less does not pay for pyarrow in the image, and a CSV reads with zcat.
"""

from __future__ import annotations

import csv
import gc
import gzip
import heapq
import io
import itertools
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, NamedTuple

from fleetcast.model import archive

MANIFEST_NAME = "manifest.csv.gz"
HOST_MANIFEST_PREFIX = "manifest-"
# Level 1, as the archives: half the write time of level 6 for 6 % more bytes (the module docstring).
COMPRESS_LEVEL = 1
METRIC_COLUMNS = ("smape", "naive_smape", "mae", "naive_mae")


class ManifestError(Exception):
    """A manifest that cannot be read or written as the format says."""


class ManifestEntry(NamedTuple):
    """One customer's row; every field is text, as it is stored (metrics: "" when not scored)."""

    customer: str
    target_model: str
    run: str
    data_sha256: str
    settings_sha256: str
    archive_format: str
    model: str
    smape: str = ""
    naive_smape: str = ""
    mae: str = ""
    naive_mae: str = ""

    @property
    def metrics(self) -> dict[str, float] | None:
        """The holdout metrics as the training report names them, or None when the model was not scored."""
        if not self.smape:
            return None
        return {name: float(getattr(self, name)) for name in METRIC_COLUMNS if getattr(self, name)}

    def is_current(self, data_sha256: str, settings_sha256: str) -> bool:
        """True when this model was trained on exactly this data with these settings, in today's format."""
        return (
            self.data_sha256 == data_sha256
            and self.settings_sha256 == settings_sha256
            and self.archive_format == str(archive.FORMAT_VERSION)
        )


COLUMNS = ManifestEntry._fields


def _metric_text(value: Any) -> str:
    if value is None:
        return ""
    return f"{float(value):.6g}"


def entry_for(
    customer: str,
    run: str,
    data_sha256: str,
    settings_sha256: str,
    model: str,
    metrics: Mapping[str, Any] | None,
) -> ManifestEntry:
    """The row of a model `run` wrote for `customer` (its TargetModel is named here, once)."""
    metrics = metrics or {}
    return ManifestEntry(
        customer=customer,
        target_model=archive.versioned_name(run, customer),
        run=run,
        data_sha256=data_sha256,
        settings_sha256=settings_sha256,
        archive_format=str(archive.FORMAT_VERSION),
        model=model,
        **{name: _metric_text(metrics.get(name)) for name in METRIC_COLUMNS},
    )


def host_manifest_name(host: str) -> str:
    return f"{HOST_MANIFEST_PREFIX}{host}.csv.gz"


def is_host_manifest(name: str) -> bool:
    return name.startswith(HOST_MANIFEST_PREFIX) and name.endswith(".csv.gz")


# ------------------------------------------------------------------------------------------------ writing
def write_manifest(
    target: Path, entries: Iterable[ManifestEntry], staging: Path | None = None
) -> tuple[Path, int]:
    """Write `entries` (sorted by customer, one each) to `target` atomically; (path, rows).

    Written to a temporary file in `staging` (default: beside `target`) and renamed into place, so a reader
    sees the old manifest or the new one. Unsorted or repeated customers raise ManifestError.
    """
    staging = target.parent if staging is None else staging
    target.parent.mkdir(parents=True, exist_ok=True)
    staging.mkdir(parents=True, exist_ok=True)
    temp = staging / f"{archive.TEMP_PREFIX}{target.name}"
    rows = 0
    try:
        with (
            open(temp, "wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0) as zipped,
            io.TextIOWrapper(zipped, encoding="utf-8", newline="") as text,
        ):
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(COLUMNS)
            previous = None
            for entry in entries:
                if previous is not None and entry.customer <= previous:
                    raise ManifestError(
                        f"manifest rows must be sorted by customer, one each: {entry.customer!r} after "
                        f"{previous!r}"
                    )
                writer.writerow(entry)
                previous = entry.customer
                rows += 1
        temp.replace(target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return target, rows


# ------------------------------------------------------------------------------------------------ reading
def iter_entries(source: IO[bytes], where: str = "manifest") -> Iterator[ManifestEntry]:
    """Every row of a manifest stream, in file order (sorted by customer). Raises ManifestError."""
    try:
        with (
            gzip.GzipFile(fileobj=source, mode="rb") as zipped,
            io.TextIOWrapper(zipped, encoding="utf-8", newline="") as text,
        ):
            reader = csv.reader(text)
            header = next(reader, None)
            if header is None or tuple(header) != COLUMNS:
                raise ManifestError(f"{where}: not a fleet manifest (header {header!r}, expected {COLUMNS})")
            width = len(COLUMNS)
            for line, row in enumerate(reader, start=2):
                if len(row) != width:
                    raise ManifestError(f"{where}, line {line}: {len(row)} fields, expected {width}")
                yield ManifestEntry._make(row)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(f"{where}: unreadable ({type(exc).__name__}: {exc})") from exc


def read_file(path: Path) -> Iterator[ManifestEntry]:
    """The rows of a manifest file (streamed; the file is closed when the iterator is exhausted)."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below, when the rows are consumed
    except OSError as exc:
        raise ManifestError(f"{path}: cannot open ({exc})") from exc
    with handle:
        yield from iter_entries(handle, str(path))


def load(entries: Iterable[ManifestEntry], wanted: set[str] | None = None) -> dict[str, ManifestEntry]:
    """The rows as customer -> entry; only the `wanted` customers when given (stops once all are found)."""
    found: dict[str, ManifestEntry] = {}
    # A million rows kept at once: the cyclic collector would scan the growing heap again and again (a fifth
    # of the load time, growing faster than the rows); rows are tuples of text, which hold no cycles.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for entry in entries:
            if wanted is None or entry.customer in wanted:
                found[entry.customer] = entry
                if wanted is not None and len(found) == len(wanted):
                    break
    finally:
        if collecting:
            gc.enable()
    return found


# ------------------------------------------------------------------------------------------------ merging
def merge(
    previous: Iterable[ManifestEntry],
    updates: Iterable[Iterable[ManifestEntry]],
    counts: dict[str, int],
    on_change: Callable[[ManifestEntry], None] | None = None,
) -> Iterator[ManifestEntry]:
    """The previous manifest with every customer in `updates` (each sorted) taking its updated row.

    A stream: memory does not grow with the number of customers. `counts` receives `kept` (rows equal to
    the previous ones), `updated`, `added` and `conflicts` (a customer in two updates: the first one wins).
    `on_change` sees every added or updated row before it is yielded (it may raise to stop the merge).
    """
    for key in ("kept", "updated", "added", "conflicts"):
        counts.setdefault(key, 0)
    # Each row is keyed (customer, rank): updates rank 0, 1, ... and the previous manifest last, so the
    # first row of each customer's group is the one that wins.

    def keyed(rows: Iterable[ManifestEntry], rank: int) -> Iterator[tuple[str, int, ManifestEntry]]:
        for entry in rows:
            yield entry.customer, rank, entry

    streams = [keyed(rows, rank) for rank, rows in enumerate(updates)]
    previous_rank = len(streams)
    streams.append(keyed(previous, previous_rank))
    for _customer, group in itertools.groupby(heapq.merge(*streams), key=lambda item: item[0]):
        rows = list(group)
        entry = rows[0][2]
        before = next((row for _, other, row in rows if other == previous_rank), None)
        counts["conflicts"] += sum(1 for _, other, _ in rows[1:] if other != previous_rank)
        if entry == before:  # the previous row, or a host's unchanged copy of it
            counts["kept"] += 1
        else:
            counts["added" if before is None else "updated"] += 1
            if on_change is not None:
                on_change(entry)
        yield entry
