"""The Processing step at fleet scale: `fleetcast split --buckets` on 10,000 / 100,000 / 1,000,000 customers.

    python -m bench.split [--sizes 10000,100000,1000000] [--rows 30] [--buckets 100] [--work DIR]

For each size it writes one raw CSV of `rows` daily readings per customer (day-major, so every customer's
rows are spread over the whole file, as a meter dump is), then runs `fleetcast split --buckets N` on it as
its own process and measures the wall time and that process's peak RSS (`wait4`'s ru_maxrss). It checks
that every row came out (the summary's rows_written) and prints, against the smallest size run in the
same process: the time and RSS ratios, seconds per million rows, and the marginal RSS per customer.

Growth must be no faster than linear: the split's CPU time per row (its summary's cpu_seconds: start-up
excluded, and barely moved by other work on a shared machine, unlike wall time) at each size is within
TIME_TOLERANCE of the size before, and the RSS added per customer from one size to the next does not
grow by more than RSS_TOLERANCE. The process exits 1 when either fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fleetcast.data.split import SUMMARY_FILE

TIME_TOLERANCE = 1.5  # time per row may be this much worse than at the smallest size (noise, caches)
RSS_TOLERANCE = 1.5  # marginal RSS per customer may grow by this much from one step to the next
BLOCK = 50_000  # customers generated per block: bounds the generator's own memory


def write_raw(path: Path, customers: int, rows: int, seed: int = 5) -> int:
    """One raw CSV with `rows` daily readings per customer; returns the number of rows."""
    rng = np.random.default_rng(seed)
    days = [f"2024-01-{d + 1:02d}" if d < 31 else f"2024-02-{d - 30:02d}" for d in range(rows)]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("customer_id,timestamp,consumption\n")
        for first in range(0, customers, BLOCK):
            ids = [f"meter-{c:07d}" for c in range(first, min(first + BLOCK, customers))]
            values = np.round(rng.gamma(4.0, 3.0, size=(rows, len(ids))), 3).tolist()
            for day, day_values in zip(days, values, strict=True):
                handle.write("".join([f"{i},{day},{v}\n" for i, v in zip(ids, day_values, strict=True)]))
    return customers * rows


@dataclass
class Run:
    customers: int
    rows: int
    seconds: float  # wall time of the process, start-up included
    split_seconds: float  # the split itself, as its summary reports it (wall)
    cpu_seconds: float  # the split's own CPU time (its summary's): what load from other work barely moves
    peak_rss_mib: float
    rows_written: int
    parts: int


def run_split(raw: Path, out: Path, buckets: int) -> Run:
    """`fleetcast split` as its own process; wall time and the process's own peak RSS."""
    argv = [sys.executable, "-m", "fleetcast.cli", "split", "--input", str(raw), "--out", str(out)]
    argv += ["--buckets", str(buckets)]
    began = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - began
    err = process.stderr.read().decode() if process.stderr else ""
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"split failed ({process.returncode}):\n{err[-2000:]}")
    summary = json.loads((out.with_name(f"{out.name}-reports") / SUMMARY_FILE).read_text())
    return Run(
        customers=summary["customers"],
        rows=summary["rows_read"],
        seconds=seconds,
        split_seconds=summary["seconds"],
        cpu_seconds=summary["cpu_seconds"],
        peak_rss_mib=usage.ru_maxrss / 1024,  # Linux reports KiB
        rows_written=summary["rows_written"],
        parts=summary["parts_written"],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="customer counts (default: %(default)s)"
    )
    parser.add_argument("--rows", type=int, default=30, help="daily rows per customer (default: %(default)s)")
    parser.add_argument("--buckets", type=int, default=100, help="part files (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if not 1 <= args.rows <= 59:
        parser.error("--rows must be 1..59 (the generator's calendar)")
    work = Path(tempfile.mkdtemp(prefix="bench-split-", dir=args.work))
    runs: list[Run] = []
    try:
        for customers in sizes:
            raw = work / f"raw-{customers}.csv"
            began = time.perf_counter()
            rows = write_raw(raw, customers, args.rows)
            print(
                f"generated {customers:,} customers x {args.rows} rows = {rows:,} rows "
                f"({raw.stat().st_size / 2**20:,.0f} MiB) in {time.perf_counter() - began:.1f}s",
                flush=True,
            )
            out = work / f"out-{customers}"
            run = run_split(raw, out, args.buckets)
            if run.rows_written != rows or run.customers != customers:
                raise SystemExit(f"split lost data: {run}")
            runs.append(run)
            print(
                f"split {customers:,} customers: {run.seconds:.1f}s, peak RSS {run.peak_rss_mib:,.0f} MiB, "
                f"{run.parts} parts",
                flush=True,
            )
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(out.with_name(f"{out.name}-reports"), ignore_errors=True)
            raw.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report(runs)


def report(runs: list[Run]) -> int:
    base = runs[0]
    load = os.getloadavg()
    print(f"\nsplit --buckets, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end")
    print(
        f"{'customers':>10} {'rows':>11} {'wall s':>7} {'split s':>8} {'cpu s':>7} {'x cpu':>7} "
        f"{'cpu s/M rows':>12} {'x per row':>9} {'peak MiB':>9} {'x RSS':>6} {'KiB/added customer':>19}"
    )
    ok = True
    previous: Run | None = None
    previous_marginal: float | None = None
    for run in runs:
        per_row = run.cpu_seconds / run.rows
        marginal = None
        if previous is not None:
            marginal = (
                (run.peak_rss_mib - previous.peak_rss_mib) * 1024 / (run.customers - previous.customers)
            )
        shown_marginal = "" if marginal is None else f"{marginal:>19.2f}"
        print(
            f"{run.customers:>10,} {run.rows:>11,} {run.seconds:>7.1f} {run.split_seconds:>8.1f} "
            f"{run.cpu_seconds:>7.1f} {run.cpu_seconds / base.cpu_seconds:>6.1f}x {per_row * 1e6:>12.2f} "
            f"{per_row / (base.cpu_seconds / base.rows):>8.2f}x {run.peak_rss_mib:>9,.0f} "
            f"{run.peak_rss_mib / base.peak_rss_mib:>5.2f}x {shown_marginal}"
        )
        # Each step against the one before: the smallest size carries fixed costs that flatter the rest.
        if previous is not None:
            step = per_row / (previous.cpu_seconds / previous.rows)
            if step > TIME_TOLERANCE:
                print(f"  time per row grew {step:.2f}x from the size before (limit {TIME_TOLERANCE}x)")
                ok = False
        if marginal is not None and previous_marginal and marginal > RSS_TOLERANCE * previous_marginal:
            print(
                f"  RSS per added customer grew {marginal / previous_marginal:.2f}x (limit {RSS_TOLERANCE}x)"
            )
            ok = False
        previous = run
        previous_marginal = marginal if marginal is not None else previous_marginal
    print("growth: linear or better" if ok else "growth: FASTER THAN LINEAR")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
