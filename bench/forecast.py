"""The batch forecast's throughput against the ways a customer's forecast is made one at a time, and its
memory against the number of customers.

    python -m bench.forecast [--customers 2000] [--period 7] [--baseline-sample 40]
    python -m bench.forecast --memory 10000,100000 [--distinct 200]

Throughput: fits `--customers` daily models (365 days, one year of generated readings) with the in-process
engine and writes their archives as `train` does; then, in one run, for `--period` steps with intervals
(1,000 samples, the default uncertainty_samples):
  (a) stock Prophet: `model_from_json` + `predict` on the future dates, np.random seeded as the server
      does (on a sample: it is slow);
  (b) the per-request path an endpoint takes for a cold model: extract the archive, load it through the
      serving factory (`serving.predictors.load_model`), answer one request (on a sample);
  (c) `fleetcast forecast`'s job on every archive with one worker process: customers per second per core;
  (c0) the same on the same models written without compiled.json (archives from before training shipped
      it), interleaved with (c);
  (d) the same with one worker per CPU;
and prints (c)/(a) and (c)/(b).

Memory: `--memory` runs the job (`python -m fleetcast.cli forecast`, one worker per CPU) on fleets of the
given sizes, made of `--distinct` short models (60 days) hard-linked under as many names as needed, and
samples the peak RSS of the job's process tree: a bounded job's peak does not grow with the count.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.training import MemoryPeak, _memory_of, _tree
from fleetcast.data.generate import customer_series
from fleetcast.forecast.job import run_forecast
from fleetcast.forecast.sources import Cluster
from fleetcast.logs import setup_logging
from fleetcast.model import archive, dates
from fleetcast.model.fit import engine
from fleetcast.model.settings import ProphetSettings

log = logging.getLogger("bench.forecast")


def write_fleet(folder: Path, customers: int, days: int) -> list[Path]:
    """`customers` archives of daily models fitted on `days` of generated readings, as train writes them
    (model.json, compiled.json beside it, metadata.json)."""
    import pandas as pd

    grid = pd.date_range("2022-01-01", periods=days, freq="D")
    settings = ProphetSettings()
    paths = []
    for customer in range(customers):
        stamps, values = customer_series(customer, 42, grid, days)
        ds = np.asarray(stamps, dtype="datetime64[ns]")
        outcome = engine.fit_series(ds, np.asarray(values, dtype=float), settings, label=str(customer))
        metadata = {
            "customer": str(customer),
            "rows": days,
            "start": dates.isoformat(ds[0]),
            "end": dates.isoformat(ds[-1]),
            "freq": "D",
            "prophet": settings.prophet_kwargs(),
            "model": "configured",
        }
        model_json = outcome.to_json()
        compiled = engine.compiled_form(outcome, model_json)  # shipped beside model.json, as train does
        paths.append(archive.write_archive(folder, str(customer), model_json, metadata, compiled=compiled))
    return paths


def without_compiled(paths: list[Path], folder: Path) -> Path:
    """The same archives written again without compiled.json, as archives from before it existed."""
    for path in paths:
        model_json, metadata = archive.read_archive(path)
        metadata = {key: value for key, value in metadata.items() if key != archive.COMPILED_SHA256_KEY}
        archive.write_archive(folder, metadata["customer"], model_json, metadata)
    return folder


def prophet_rate(paths: list[Path], period: int) -> float:
    """(a): customers/s of stock Prophet, loading each model and predicting its future with intervals."""
    import pandas as pd

    from fleetcast.model.prophet_model import model_from_json
    from fleetcast.serving.predictor import INTERVAL_SEED

    paths = [paths[0], *paths]  # the first call imports Prophet: not timed
    began = 0.0
    for index, path in enumerate(paths):
        if index == 1:
            began = time.perf_counter()
        model_json, metadata = archive.read_archive(path)
        model = model_from_json(model_json)
        future = dates.future_frame(pd.Timestamp(metadata["end"]), period, metadata["freq"])
        np.random.seed(INTERVAL_SEED)
        model.predict(future)
    return (len(paths) - 1) / (time.perf_counter() - began)


def per_request_rate(paths: list[Path], period: int, scratch: Path) -> float:
    """(b): customers/s of the endpoint's cold path: extract, load through the serving factory, answer."""
    from fleetcast.serving.predictors import load_model
    from fleetcast.serving.protocol import ForecastRequest

    paths = [paths[0], *paths]  # the first load imports the serving modules: not timed
    began = 0.0
    for index, path in enumerate(paths):
        if index == 1:
            began = time.perf_counter()
        model_dir = scratch / f"m{index}" / "model"
        model_dir.mkdir(parents=True)
        with tarfile.open(path) as tar:
            for member in tar:
                target = model_dir / member.name
                extracted = tar.extractfile(member)
                assert extracted is not None
                target.write_bytes(extracted.read())
        load_model(model_dir).predictor.forecast(ForecastRequest(period=period))
    return (len(paths) - 1) / (time.perf_counter() - began)


def stage_costs(paths: list[Path], period: int) -> dict[str, float]:
    """Microseconds per customer of each stage of (c), measured one stage at a time over `paths` (the steps
    `archive.read_archive_contents(model=False)` and `forecast_archive` take, timed apart), and for
    comparison what reading the whole archive and, without compiled.json, compiling model.json cost."""
    from fleetcast.forecast.dataset import compressed_chunk
    from fleetcast.forecast.predict import _compiled_forecast
    from fleetcast.model.compiled import CompiledModel, compile_model_json

    costs = {}

    def timed(stage: str, step: Callable[[Any], Any], inputs: list) -> list:
        began = time.perf_counter()
        out = [step(item) for item in inputs]
        costs[stage] = time.perf_counter() - began
        return out

    def members(raw: bytes) -> dict[str, bytes]:
        return {name: payload for name, _, payload in archive._tar_members(raw)}

    def checked(found: dict[str, bytes]) -> tuple[dict, dict]:
        metadata, compiled = archive._checked_members(
            found[archive.METADATA_FILE], found[archive.COMPILED_FILE], Path("bench")
        )
        assert compiled is not None
        return metadata, compiled

    data = timed("read the file", lambda path: path.read_bytes(), paths)
    head = timed("inflate up to model.json, its tar headers", archive._head_members, data)
    if any(found is None for found in head):
        raise SystemExit("an archive was not written metadata.json, compiled.json, model.json")
    parsed = timed("sha256 compiled.json + parse it and metadata.json", checked, head)
    models = timed("CompiledModel.from_dict", lambda pair: CompiledModel.from_dict(pair[1]), parsed)
    forecasts = timed(
        "future dates + forecast with intervals",
        lambda item: _compiled_forecast(item[0], item[1][0], period, item[2], archive.COMPILED_FILE),
        list(zip(models, parsed, paths, strict=True)),
    )
    began = time.perf_counter()
    compressed_chunk(forecasts)
    costs["CSV rows + gzip (one chunk)"] = time.perf_counter() - began
    raw = timed("instead, the whole archive: gunzip", archive._gunzipped, data)
    found = timed("  + all its tar members", members, raw)
    timed(
        "instead, without compiled.json: sha256 + compile model.json",
        lambda pair: compile_model_json(
            archive._verified(pair[0][archive.MODEL_FILE].decode(), pair[1][0], pair[2])[0],
            history_step=period == 1,
        ),
        list(zip(found, parsed, paths, strict=True)),
    )
    return {stage: seconds / len(paths) * 1e6 for stage, seconds in costs.items()}


def job_rate(models: Path, period: int, workers: int, out: Path) -> float:
    """(c)/(d): customers/s of the batch job over every archive under `models`."""
    outcome = run_forecast(
        models, period, out / "data", out / "reports", cluster=Cluster("bench", ("bench",)), workers=workers
    )
    summary = outcome.summary
    if summary["failed"]:
        raise SystemExit(f"{summary['failed']} customers failed: {outcome.failures}")
    return summary["customers_per_second"]


def throughput(args: argparse.Namespace) -> None:
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-forecast-") as work:
        root = Path(work)
        began = time.perf_counter()
        paths = write_fleet(root / "models", args.customers, 365)
        print(f"fitted and archived {len(paths)} daily models in {time.perf_counter() - began:.1f} s")
        print(f"load average before: {os.getloadavg()[0]:.2f} ({cores} CPUs)")
        sample = paths[: args.baseline_sample]
        rate_a = prophet_rate(sample, args.period)
        rate_b = per_request_rate(paths[: args.request_sample], args.period, root / "extracted")
        older = without_compiled(paths, root / "older")
        rates_c, rates_older = [], []
        for run in range(args.repeats):  # interleaved, so a change in the machine's load hits both alike
            rates_c.append(job_rate(root / "models", args.period, 1, root / f"c{run}"))
            rates_older.append(job_rate(older, args.period, 1, root / f"o{run}"))
        rate_c, rate_older = statistics.median(rates_c), statistics.median(rates_older)
        rate_d = job_rate(root / "models", args.period, cores, root / "d")
        stages = stage_costs(paths[:500], args.period)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"period {args.period} with intervals (1,000 samples), customers/s:")
    print(f"  (a) stock Prophet load + predict, {len(sample)} customers:        {rate_a:10.1f}")
    print(f"  (b) per-request path (extract, load, answer), {args.request_sample}:  {rate_b:10.1f}")
    print(f"  (c) fleetcast forecast, 1 worker, {len(paths)} customers:      {rate_c:10.1f} per core")
    print(f"      (runs: {', '.join(f'{r:.0f}' for r in rates_c)})")
    print(f"  (c0) the same on archives without compiled.json (older ones): {rate_older:8.1f} per core")
    print(f"      (runs: {', '.join(f'{r:.0f}' for r in rates_older)})")
    per_core = f"({rate_d / cores:.1f} per core)"
    print(f"  (d) fleetcast forecast, {cores} workers:                       {rate_d:10.1f} {per_core}")
    print(
        f"  (c)/(a) = {rate_c / rate_a:.1f}x   (c)/(b) = {rate_c / rate_b:.2f}x   "
        f"(c)/(c0) = {rate_c / rate_older:.2f}x"
    )
    print("where a customer's time goes in (c), one stage at a time over 500 customers:")
    for stage, micros in stages.items():
        print(f"  {stage:<52} {micros:7.0f} us")


def peak_of_job(models: Path, out: Path, period: int) -> tuple[MemoryPeak, float]:
    command = [
        sys.executable,
        "-m",
        "fleetcast.cli",
        "forecast",
        "--models",
        str(models),
        "--period",
        str(period),
    ]
    command += ["--out", str(out / "data"), "--reports", str(out / "reports")]
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = MemoryPeak()
    while process.poll() is None:
        sizes = {pid: _memory_of(pid) for pid in _tree(process.pid)}
        peak.rss = max(peak.rss, sum(rss for rss, _ in sizes.values()))
        for pid, (rss, _) in sizes.items():
            peak.by_process[pid] = max(peak.by_process.get(pid, 0), rss)
        time.sleep(0.05)
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"forecast failed ({process.returncode}): {stderr[-2000:]}")
    return peak, time.perf_counter() - began


def memory(args: argparse.Namespace) -> None:
    sizes = [int(size) for size in args.memory.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-forecast-memory-", dir=args.scratch) as work:
        root = Path(work)
        distinct = write_fleet(root / "distinct", args.distinct, 60)
        peaks: dict[int, MemoryPeak] = {}
        for size in sizes:
            models = root / f"fleet-{size}"
            began = time.perf_counter()
            for index in range(size):  # sub-folders of 10,000 keep directories a reasonable size
                folder = models / f"{index // 10_000:04d}"
                if index % 10_000 == 0:
                    folder.mkdir(parents=True)
                os.link(distinct[index % len(distinct)], folder / archive.archive_name(f"c{index}"))
            laid_out = time.perf_counter() - began
            print(f"{size:,} laid out (links to {len(distinct)} short models) in {laid_out:.1f} s")
            peak, seconds = peak_of_job(models, root / f"out-{size}", args.period)
            rows = json.loads((root / f"out-{size}" / "reports" / "forecast-summary-local.json").read_text())
            peaks[size] = peak
            print(
                f"  {size:>9,} customers: peak RSS of the process tree {peak.rss / 2**20:7.1f} MiB, largest "
                f"process {max(peak.by_process.values()) / 2**20:6.1f} MiB, {seconds:6.1f} s, "
                f"{rows['customers_per_second']:.0f} customers/s, {rows['failed']} failed, "
                f"load average {os.getloadavg()[0]:.2f}"
            )
            for stale in models.iterdir():  # free the directory entries before the next size
                for link in stale.iterdir():
                    link.unlink()
        smallest, largest = min(sizes), max(sizes)
        print(
            f"peak RSS {largest:,} / {smallest:,} customers: {peaks[largest].rss / peaks[smallest].rss:.3f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--period", type=int, default=7)
    parser.add_argument("--baseline-sample", type=int, default=40, help="customers stock Prophet forecasts")
    parser.add_argument(
        "--request-sample", type=int, default=300, help="customers the per-request path serves"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of (c); the median is reported")
    parser.add_argument("--memory", default=None, help="fleet sizes for the memory run, e.g. 10000,100000")
    parser.add_argument("--distinct", type=int, default=200, help="distinct short models in the memory run")
    parser.add_argument("--scratch", default=None, help="folder for the memory run's fleets (default: tmp)")
    args = parser.parse_args()
    setup_logging("WARNING")
    if args.memory:
        memory(args)
    else:
        throughput(args)


if __name__ == "__main__":
    main()
