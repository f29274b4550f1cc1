"""The driver: both passes of a split run, the summary, and the `fleetcast split` command's exit codes."""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fleetcast.data.split import stopping
from fleetcast.data.split.chunks import Counters, parse_chunk, read_chunks
from fleetcast.data.split.cluster import Instance, read_instance
from fleetcast.data.split.columns import choose_extra_columns, parse_keep_columns
from fleetcast.data.split.customers import CustomerTable
from fleetcast.data.split.errors import SplitError
from fleetcast.data.split.inputs import Header, check_header, estimate_rows, find_inputs
from fleetcast.data.split.progress import Progress
from fleetcast.data.split.reports import summary, write_side_files
from fleetcast.data.split.spool import MAX_SPOOLS, SPOOL_ROWS, Spooler, extra_field, record_dtype
from fleetcast.data.split.writers import write_buckets, write_customers
from fleetcast.paths import SageMakerPaths
from fleetcast.processing import write_exit_message

log = logging.getLogger(__name__)

# Spools and the staged output live inside the output folder: the same volume, so moving the output into
# place is a rename; hidden, so no reader takes them for data. Removed at the end, whatever happens.
WORK_DIR = ".split-work"
STAGED_DIR = "staged"  # inside WORK_DIR: the output as it is written, moved into place once complete


@dataclass
class SplitResult:
    summary: dict
    customers: int
    summary_file: Path


def default_reports_dir(out: Path) -> Path:
    """Where the reports go when not told: beside the output, `<out>-reports` (never inside it)."""
    return out.with_name(f"{out.name}-reports")


def _check_locations(out: Path, reports: Path) -> None:
    if out.exists() and not out.is_dir():
        raise SplitError(f"output {out} exists and is not a folder")
    if reports.exists() and not reports.is_dir():
        raise SplitError(f"reports folder {reports} exists and is not a folder")
    where_out, where_reports = out.resolve(), reports.resolve()
    if where_out == where_reports or where_out in where_reports.parents or where_reports in where_out.parents:
        raise SplitError(
            f"the reports folder {reports} and the output {out} must be apart: the output is the training "
            "channel, and every file in it is dealt out as customer data"
        )
    if out.is_dir():
        entries = sorted(p.name for p in out.iterdir())
        if entries:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise SplitError(
                f"output folder {out} is not empty ({len(entries)} entries: {shown}); split writes into an "
                "empty folder so no stale customer survives from an earlier run: remove it or pick another"
            )


def split(
    inputs: Sequence[Path],
    out: Path,
    buckets: int = 0,
    chunk_rows: int = 500_000,
    spool_rows: int = SPOOL_ROWS,
    reports: Path | None = None,
    instance: Instance | None = None,
    keep_columns: list[str] | None = None,
) -> SplitResult:
    """Run both passes; raises SplitError for input the person must fix.

    The output is written to a staging folder and moved into `out` only when complete: a run that fails
    (bad input found mid-way, a corrupt file, SIGTERM) leaves `out` as it was.
    """
    if buckets < 0:
        raise SplitError(f"--buckets must be 0 (one folder per customer) or a positive count, not {buckets}")
    if chunk_rows < 1:
        raise SplitError(f"--chunk-rows must be at least 1, not {chunk_rows}")
    instance = instance or Instance()
    reports = reports if reports is not None else default_reports_dir(out)
    began, cpu_began = time.perf_counter(), time.process_time()
    # A multi-instance job with sharded input may hand an instance no raw file at all: nothing to do.
    files = find_inputs(inputs, may_be_empty=instance.multi and instance.input_sharded)
    headers = [check_header(path) for path in files]
    extras = choose_extra_columns(headers, keep_columns)
    _check_locations(out, reports)

    wanted_spools = min(MAX_SPOOLS, max(1, math.ceil(estimate_rows(files) / max(spool_rows, 1))))
    per_bucket = math.ceil(wanted_spools / buckets) if buckets else wanted_spools
    table = CustomerTable(buckets=buckets, spools_per_bucket=per_bucket)
    spool_count = (buckets or 1) * per_bucket
    counters = Counters()
    log.info(
        "split: %d input file(s), %s layout, %d spool file(s), %d rows per chunk%s",
        len(files),
        f"{buckets} buckets" if buckets else "one folder per customer",
        spool_count,
        chunk_rows,
        _instance_note(instance),
    )
    work = out / WORK_DIR
    staged = work / STAGED_DIR
    created: list[Path] = []  # folders this run made, removed again if it fails
    try:
        # Both folders up front: one that cannot be written fails the run before any work is done.
        _make_folder(out, "output folder", created)
        _make_folder(reports, "reports folder", created)
        staged.mkdir(parents=True)
        spooler = Spooler(work, spool_count, record_dtype(len(extras)))
        _spool_inputs(files, headers, chunk_rows, table, spooler, counters, instance, extras)
        if buckets:
            host = instance.host if instance.multi else None
            parts = write_buckets(staged, work, table, spooler, counters, buckets, per_bucket, host, extras)
        else:
            parts = 0
            write_customers(staged, table, spooler, counters, extras)
        stopping.check()  # the last point at which a stop leaves the output as it was
        _publish(staged, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        for folder in created:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)

    seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu_began
    report = summary(
        files=files,
        out=out,
        instance=instance,
        table=table,
        counters=counters,
        buckets=buckets,
        parts=parts,
        spools=spool_count,
        chunk_rows=chunk_rows,
        times=(seconds, cpu_seconds),
        extras=extras,
    )
    summary_file = write_side_files(reports, instance, table, report)
    return SplitResult(summary=report, customers=len(table.names), summary_file=summary_file)


def _make_folder(folder: Path, what: str, created: list[Path]) -> None:
    """Make `folder` (and missing parents) unless it exists; note the topmost folder made, for cleanup."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SplitError(f"cannot create the {what} {folder}: {exc.strerror or exc}") from None
    if missing:
        created.append(missing[-1])


def _instance_note(instance: Instance) -> str:
    if not instance.multi:
        return ""
    how = (
        "its own share of the raw files (ShardedByS3Key)"
        if instance.input_sharded
        else "every raw file, keeping the customers it owns"
    )
    return f"; instance {instance.host} of {len(instance.hosts)} reads {how}"


def _publish(staged: Path, out: Path) -> None:
    """Move the complete output into `out`, entry by entry (same volume: renames); all or nothing."""
    moved: list[Path] = []
    try:
        for entry in sorted(staged.iterdir()):
            target = out / entry.name
            os.rename(entry, target)
            moved.append(target)
    except BaseException:
        for target in moved:
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
        raise


def _spool_inputs(
    files: Sequence[Path],
    headers: Sequence[Header],
    chunk_rows: int,
    table: CustomerTable,
    spooler: Spooler,
    counters: Counters,
    instance: Instance,
    extras: Sequence[str],
) -> None:
    progress = Progress()
    owns = instance.owns if instance.shares_input else None  # None: every customer, no per-id work
    for path, header in zip(files, headers, strict=True):
        for frame in read_chunks(path, header, chunk_rows, counters, owns, extras):
            stopping.check()
            chunk = parse_chunk(frame, counters, owns)
            if len(chunk.codes) == 0:
                continue
            numbers, spools = table.lookup(chunk.ids)
            records = np.empty(len(chunk.codes), dtype=spooler.record)
            records["customer"] = numbers[chunk.codes]
            records["time"] = chunk.micros
            records["value"] = chunk.values
            for i in range(len(extras)):
                records[extra_field(i)] = chunk.extras[:, i]
            spooler.append(spools[chunk.codes], records)
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
    if counters.rows_of_other_hosts:
        log.info("split: %d rows belong to customers other instances split", counters.rows_of_other_hosts)
    if counters.rows_dropped:
        reasons = ", ".join(f"{k} {v}" for k, v in counters.dropped.items() if v)
        log.warning("split: dropped %d rows: %s", counters.rows_dropped, reasons)
    for example in counters.malformed_examples:
        log.warning("split: malformed line: %s", example)


def _report_failure(message: str, paths: SageMakerPaths) -> None:
    log.error("split failed: %s", message)
    print(f"fleetcast split: error: {message}", file=sys.stderr)
    write_exit_message(paths, message)


def split_main(
    inputs: Sequence[Path] | None,
    out: Path | None,
    buckets: int = 0,
    chunk_rows: int = 500_000,
    reports: Path | None = None,
    keep_columns: str | None = None,
) -> int:
    """The `fleetcast split` command: 0 on success, 2 for input to fix, 1 when no row survived.

    Without `--input`/`--out`/`--reports` it uses the Processing job's folders under /opt/ml/processing
    (`SAGEMAKER_BASE_DIR` relocates them); `--out` alone puts the reports beside it, in `<out>-reports`.
    """
    paths = SageMakerPaths.from_env()
    input_paths = [Path(p) for p in inputs] if inputs else [paths.processing_input_dir]
    if reports is None:
        reports = paths.processing_reports_dir if out is None else default_reports_dir(Path(out))
    out = Path(out) if out is not None else paths.processing_output_dir
    try:
        keep = parse_keep_columns(keep_columns)
        instance = read_instance(paths, input_paths)
        with stopping.sigterm_stops_at_safe_points():
            result = split(
                input_paths,
                out,
                buckets=buckets,
                chunk_rows=chunk_rows,
                reports=Path(reports),
                instance=instance,
                keep_columns=keep,
            )
    except SplitError as exc:
        _report_failure(str(exc), paths)
        return 2
    except OSError as exc:  # the machine, not the input: a full disk, a folder that went away
        _report_failure(f"cannot read or write {exc.filename or ''}: {exc.strerror or exc}", paths)
        return 1
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
    log.info("split: summary in %s", result.summary_file)
    if s["renamed_ids_count"]:
        log.warning(
            "split: %d customer id(s) were renamed to be safe file names; see %s",
            s["renamed_ids_count"],
            result.summary_file.with_name(s["renamed_ids_file"]),
        )
    if result.customers == 0:
        if instance.multi and (s["rows_of_other_hosts"] or (instance.input_sharded and not s["inputs"])):
            # Fewer customers (or raw files) than instances: this one has nothing, the others do.
            log.info("split: instance %s has no customers of its own; nothing to write", instance.host)
            return 0
        _report_failure(f"no valid rows in the input (summary: {result.summary_file})", paths)
        return 1
    return 0
