"""The driver: both passes of a split run, the summary, and the `fleetcast split` command's exit codes."""

from __future__ import annotations

import logging
import math
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fleetcast.data.split.chunks import Counters, parse_chunk, read_chunks
from fleetcast.data.split.customers import CustomerTable
from fleetcast.data.split.errors import SplitError
from fleetcast.data.split.inputs import Header, check_header, estimate_rows, find_inputs
from fleetcast.data.split.progress import Progress
from fleetcast.data.split.reports import RENAMED_IDS_FILE, SUMMARY_FILE, summary, write_side_files
from fleetcast.data.split.spool import MAX_SPOOLS, RECORD, SPOOL_ROWS, Spooler
from fleetcast.data.split.writers import write_buckets, write_customers
from fleetcast.paths import SageMakerPaths

log = logging.getLogger(__name__)

WORK_DIR = ".split-work"  # spools live next to the output: same volume, removed at the end


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
            parts = write_buckets(out, work, table, spooler, counters, buckets, per_bucket)
        else:
            parts = 0
            write_customers(out, table, spooler, counters)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    seconds = time.perf_counter() - began
    report = summary(files, table, counters, buckets, parts, spool_count, chunk_rows, seconds)
    write_side_files(out, table, report)
    return SplitResult(summary=report, customers=len(table.names))


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
        for frame in read_chunks(path, header, chunk_rows, counters):
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
