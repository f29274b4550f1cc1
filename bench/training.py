"""Training throughput and fidelity: fleetcast `train` against the blog's loop and two pools, in one run.

    python -m bench.training [--customers 400] [--rows 365] [--no-stan-row]
    python -m bench.training --memory [--sizes 1000,10000]

On the same generated customers (folder layout, daily rows, stock Prophet settings):
(a) the blog's loop on 1 core: read the CSV, Prophet().fit, model_to_json, write a tarball;
(b) the same work in a stock-Prophet process pool on all cores;
(c) prophet-batch `fit_many(n_jobs=<cores>)` on one long frame (fit only: no JSON, no archives);
(d) fleetcast `train`, holdout off; (e) fleetcast `train`, 7-day holdout; (f) (d) with fit_engine=stan;
(d)-(f) with `selection=off` (one configuration, as the blog); (g) `train`'s defaults: per-customer selection
by cross-validation, 7-day holdout, with the holdout quality against seasonal-naive.
Each row: models/s, the ratio to (a) and to (c), CPU-milliseconds per model, and the time outside the
solver relative to solver time (for fleetcast: per trained customer, `seconds - fit_seconds` of the
report, summed, over the summed `fit_seconds`). Then the fidelity of (d) against Stan: the 7-step yhat
of (d)'s archives against (b)'s Stan-fitted models, per series the largest relative difference.

`--memory` runs `train` (holdout off) as a subprocess on each fleet size and samples, from /proc, the
summed PSS of the whole process tree (the parent, its workers and their CmdStan children). PSS rather than
RSS: a worker forking CmdStan briefly shows a second copy of its whole RSS, which is shared, not used. The
peaks must be within 10 % of each other.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from fleetcast.data.generate import customer_series
from fleetcast.logs import quiet_third_party

HORIZON = 7
WITHIN = 0.02
MEMORY_TOLERANCE = 0.10


def write_fleet(channel: Path, customers: int, rows: int) -> None:
    grid = pd.date_range("2022-01-01", periods=rows, freq="D")
    for customer in range(customers):
        stamps, values = customer_series(customer, 42, grid, rows)
        folder = channel / str(customer)
        folder.mkdir(parents=True)
        pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d"), "consumption": values.round(3)}).to_csv(
            folder / "data.csv", index=False
        )


def read_history(folder: Path) -> pd.DataFrame:
    frame = pd.read_csv(folder / "data.csv")
    frame.columns = ["ds", "y"]
    frame["ds"] = pd.to_datetime(frame["ds"])
    return frame


def seven_steps(model, last: pd.Timestamp) -> np.ndarray:
    model.uncertainty_samples = 0  # yhat only; intervals are not compared
    future = pd.DataFrame({"ds": pd.date_range(last + pd.Timedelta(days=1), periods=HORIZON, freq="D")})
    return model.predict(future)["yhat"].to_numpy()


def blog_fit(folder: Path, out: Path) -> tuple[str, float, np.ndarray | None]:
    """One customer the blog's way. Returns (customer, seconds in Prophet.fit, 7-step yhat when asked)."""
    from prophet import Prophet
    from prophet.serialize import model_to_json

    quiet_third_party()
    frame = read_history(folder)
    model = Prophet()
    began = time.perf_counter()
    model.fit(frame)
    fit_seconds = time.perf_counter() - began
    payload = model_to_json(model).encode()
    with tarfile.open(out / f"{folder.name}.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("model.json")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return folder.name, fit_seconds, None


def run_blog_loop(folders: list[Path], out: Path) -> dict:
    out.mkdir(parents=True)
    began = time.perf_counter()
    fit = sum(blog_fit(folder, out)[1] for folder in folders)
    return {"elapsed": time.perf_counter() - began, "fit": fit, "workers": 1}


def run_stock_pool(folders: list[Path], out: Path, cores: int) -> tuple[dict, dict[str, np.ndarray]]:
    """(b): timed without the fidelity predictions, which a second, untimed pass computes from its models."""
    out.mkdir(parents=True)
    with ProcessPoolExecutor(cores, mp_context=get_context("fork")) as pool:
        began = time.perf_counter()
        fits = list(pool.map(blog_fit, folders, [out] * len(folders), chunksize=4))
        elapsed = time.perf_counter() - began
    with ProcessPoolExecutor(cores, mp_context=get_context("fork")) as pool:
        yhat = {c: y for c, _, y in pool.map(_predict_archive_of_pool, [out / f.name for f in folders])}
    return {"elapsed": elapsed, "fit": sum(f for _, f, _ in fits), "workers": cores}, yhat


def _predict_archive_of_pool(stem: Path) -> tuple[str, None, np.ndarray]:
    from prophet.serialize import model_from_json

    quiet_third_party()
    with tarfile.open(f"{stem}.tar.gz") as tar:
        model = model_from_json(tar.extractfile("model.json").read().decode())
    return stem.name, None, seven_steps(model, model.history["ds"].max())


def run_fit_many(folders: list[Path], cores: int) -> dict:
    from prophet_batch import fit_many

    long = pd.concat([read_history(folder).assign(unique_id=folder.name) for folder in folders])
    began = time.perf_counter()
    models = fit_many(long, n_jobs=cores)
    elapsed = time.perf_counter() - began
    assert len(models) == len(folders)
    return {"elapsed": elapsed, "fit": None, "workers": cores}


def fleetcast_train(channel: Path, root: Path, **hyperparameters: str) -> dict:
    """`train` under a fresh /opt/ml-shaped root, timed whole (scan, fleet loop, report, summary)."""
    from fleetcast.training.job import train_main

    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "data").mkdir(parents=True)
    os.symlink(channel, root / "input" / "data" / "train")
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    os.environ["SAGEMAKER_BASE_DIR"] = str(root)
    began = time.perf_counter()
    code = train_main()
    elapsed = time.perf_counter() - began
    if code != 0:
        raise SystemExit(f"fleetcast train failed: {(root / 'output' / 'failure').read_text()}")
    summary = json.loads((root / "model" / "fleet-summary-algo-1.json").read_text())
    with open(root / "output" / "data" / "report-algo-1.csv", newline="") as handle:
        trained = [r for r in csv.DictReader(handle) if r["status"] == "trained"]
    return {
        "elapsed": elapsed,
        "fit": sum(float(r["fit_seconds"]) for r in trained),
        "busy": sum(float(r["seconds"]) for r in trained),
        "workers": summary["workers"],
        "engines": summary.get("fit_engines", {}),
        "models": summary.get("models", {}),
        "fits_per_customer": summary.get("fits_per_customer"),
        "median_smape": summary.get("median_smape"),
        "median_naive_smape": summary.get("median_naive_smape"),
        "beats_naive_share": summary.get("beats_naive_share"),
        "trained": len(trained),
        "root": root,
    }


def fleetcast_yhat(root: Path) -> dict[str, np.ndarray]:
    from fleetcast.model import archive
    from fleetcast.model.prophet_model import model_from_json

    out = {}
    for path in sorted((root / "checkpoints").glob("*.tar.gz")):
        model_json, metadata = archive.read_archive(path)
        out[metadata["customer"]] = seven_steps(model_from_json(model_json), pd.Timestamp(metadata["end"]))
    return out


def fidelity(ours: dict[str, np.ndarray], stan: dict[str, np.ndarray]) -> str:
    from tests.support.fit_fidelity import max_relative_difference

    diffs = [max_relative_difference(ours[customer], reference) for customer, reference in stan.items()]
    within = sum(d <= WITHIN for d in diffs) / len(diffs)
    return (
        f"fidelity of (d) against Stan ((b)'s models), {HORIZON}-step yhat over {len(diffs)} series: "
        f"median {statistics.median(diffs):.3%}, max {max(diffs):.3%}, within {WITHIN:.0%}: {within:.1%}"
    )


def table(runs: dict[str, dict], n: int) -> list[str]:
    base = n / runs["a"]["elapsed"]
    batch = n / runs["c"]["elapsed"]
    lines = [
        f"{'run':48} {'models/s':>9} {'vs (a)':>7} {'vs (c)':>7} {'CPU ms/model':>13} {'outside solver':>15}"
    ]
    for run in runs.values():
        rate = n / run["elapsed"]
        cpu_ms = run["elapsed"] * run["workers"] / n * 1000
        if run.get("busy") is not None:
            outside = f"{(run['busy'] - run['fit']) / run['fit']:.1%}"
        elif run["fit"] is not None:
            outside = f"{(run['elapsed'] * run['workers'] - run['fit']) / run['fit']:.1%}"
        else:
            outside = "n/a"
        lines.append(
            f"{run['label']:48} {rate:9.1f} {rate / base:6.2f}x {rate / batch:6.2f}x "
            f"{cpu_ms:13.1f} {outside:>15}"
        )
    return lines


def throughput(args: argparse.Namespace) -> None:
    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="fleetcast-bench-train-"))
    try:
        channel = work / "customers"
        write_fleet(channel, args.customers, args.rows)
        folders = sorted(channel.iterdir(), key=lambda p: int(p.name))
        runs = {"a": {"label": "(a) blog loop, 1 core", **run_blog_loop(folders, work / "a")}}
        stock, stan_yhat = run_stock_pool(folders, work / "b", cores)
        runs["b"] = {"label": f"(b) stock Prophet process pool, {cores} cores", **stock}
        runs["c"] = {"label": f"(c) prophet-batch fit_many(n_jobs={cores})", **run_fit_many(folders, cores)}
        # (d)-(f) train the configured model only, as the blog does; (g) is train's default, selection.
        runs["d"] = {
            "label": "(d) fleetcast train, holdout off",
            **fleetcast_train(channel, work / "d", holdout_days="0", selection="off"),
        }
        runs["e"] = {
            "label": "(e) fleetcast train, 7-day holdout",
            **fleetcast_train(channel, work / "e", selection="off"),
        }
        if args.stan_row:
            runs["f"] = {
                "label": "(f) fleetcast train, holdout off, fit_engine=stan",
                **fleetcast_train(channel, work / "f", holdout_days="0", fit_engine="stan", selection="off"),
            }
        runs["g"] = {
            "label": "(g) fleetcast train, selection=auto (default)",
            **fleetcast_train(channel, work / "g"),
        }
        ours = fleetcast_yhat(runs["d"]["root"])
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n = args.customers
    print(f"\n{n} customers x {args.rows} daily rows, {cores} CPUs, one run")
    print("\n".join(table(runs, n)))
    for key in ("d", "e", "f", "g"):
        if key in runs:
            run = runs[key]
            quality = ""
            if run["median_smape"] is not None:
                quality = (
                    f"; holdout median sMAPE {run['median_smape']:.2f}% "
                    f"vs naive {run['median_naive_smape']:.2f}% "
                    f"({run['median_smape'] / run['median_naive_smape']:.2f}x), "
                    f"beats naive for {run['beats_naive_share']:.1%}"
                )
            print(
                f"{key}: fit engines {run['engines']}, {run['trained']} trained, "
                f"{run['fits_per_customer']} fits/customer, models {run['models']}{quality}"
            )
    print(fidelity(ours, stan_yhat))


def _tree(pid: int) -> list[int]:
    """A process and all its descendants, from /proc."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo.extend(int(child) for child in handle.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue  # it exited meanwhile
    return found


def _pss(pid: int) -> int:
    """Proportional set size in bytes: shared pages split among their sharers, so a sum does not count
    twice what forked workers (or a worker forking CmdStan) share."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def peak_memory_of_train(channel: Path, root: Path, workers: int) -> tuple[int, float]:
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "data").mkdir(parents=True)
    os.symlink(channel, root / "input" / "data" / "train")
    hyperparameters = {"holdout_days": "0", "workers": str(workers), "progress_seconds": "30"}
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(root)}
    began = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "fleetcast.cli", "train"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    peak = 0
    peak_by_process: dict[int, int] = {}
    stderr: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True)
    reader.start()
    while process.poll() is None:
        sizes = {pid: _pss(pid) for pid in _tree(process.pid)}
        peak = max(peak, sum(sizes.values()))
        for pid, size in sizes.items():
            peak_by_process[pid] = max(peak_by_process.get(pid, 0), size)
        time.sleep(0.05)
    reader.join()
    if process.returncode != 0:
        raise SystemExit(f"train failed ({process.returncode}): {b''.join(stderr)[-2000:].decode()}")
    parent = peak_by_process.pop(process.pid, 0)
    others = sorted(peak_by_process.values(), reverse=True)[:4]
    print(
        f"  peak PSS of train {parent / 2**20:.1f} MiB, largest children "
        + ", ".join(f"{o / 2**20:.1f}" for o in others)
    )
    fallbacks = sum(b"fell back to Stan" in line for line in stderr)
    if fallbacks:
        print(f"  ({fallbacks} fits fell back to Stan: the first one in a worker imports Prophet)")
    return peak, time.perf_counter() - began


def memory(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    workers = os.cpu_count() or 1
    peaks: dict[int, int] = {}
    work = Path(tempfile.mkdtemp(prefix="fleetcast-bench-mem-"))
    try:
        for size in sizes:
            channel = work / f"customers-{size}"
            write_fleet(channel, size, args.rows)
            peaks[size], seconds = peak_memory_of_train(channel, work / f"root-{size}", workers)
            print(f"{size:>7} customers: peak PSS {peaks[size] / 2**20:7.1f} MiB "
                  f"(train + {workers} workers + CmdStan) in {seconds:.0f}s")  # fmt: skip
            shutil.rmtree(work / f"root-{size}", ignore_errors=True)
            shutil.rmtree(channel, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    low, high = min(peaks.values()), max(peaks.values())
    verdict = "within" if high <= low * (1 + MEMORY_TOLERANCE) else "NOT within"
    print(f"largest / smallest peak: {high / low:.3f} ({verdict} {MEMORY_TOLERANCE:.0%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--rows", type=int, default=365)
    parser.add_argument("--no-stan-row", dest="stan_row", action="store_false", help="skip row (f)")
    parser.add_argument("--memory", action="store_true", help="peak RSS of train at each of --sizes")
    parser.add_argument("--sizes", default="1000,10000")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    quiet_third_party()
    memory(args) if args.memory else throughput(args)


if __name__ == "__main__":  # prophet-batch's pool uses spawn, which re-imports this module
    main()
