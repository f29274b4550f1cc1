"""Training throughput: fleetcast `train` against the blog's plain sequential loop, in one run.

    python -m bench.training [--customers 1000] [--rows 365]

(a) baseline: for each customer read its CSV, fit Prophet, model_to_json, write a tarball, one at a time;
(b) fleetcast train, holdout off (the same work, on all cores); (c) fleetcast train with the 7-day holdout.
Prints models/s and the ratio to (a), and fleetcast's per-model overhead (everything but Prophet.fit).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

import pandas as pd

from fleetcast.data.generate import customer_series
from fleetcast.logs import quiet_third_party


def write_fleet(channel: Path, customers: int, rows: int) -> None:
    grid = pd.date_range("2022-01-01", periods=365, freq="D")
    for customer in range(customers):
        stamps, values = customer_series(customer, 42, grid, rows)
        folder = channel / str(customer)
        folder.mkdir(parents=True)
        pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d"), "consumption": values.round(3)}).to_csv(
            folder / "data.csv", index=False
        )


def baseline_loop(channel: Path, out: Path) -> tuple[float, float]:
    """The blog's pattern. Returns (elapsed seconds, seconds inside Prophet.fit)."""
    from prophet import Prophet
    from prophet.serialize import model_to_json

    quiet_third_party()
    out.mkdir(parents=True)
    fit_seconds = 0.0
    began = time.perf_counter()
    for folder in sorted(channel.iterdir()):
        frame = pd.read_csv(folder / "data.csv")
        frame.columns = ["ds", "y"]
        frame["ds"] = pd.to_datetime(frame["ds"])
        model = Prophet()
        fit_began = time.perf_counter()
        model.fit(frame)
        fit_seconds += time.perf_counter() - fit_began
        payload = model_to_json(model).encode()
        with tarfile.open(out / f"{folder.name}.tar.gz", "w:gz") as tar:
            info = tarfile.TarInfo("model.json")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return time.perf_counter() - began, fit_seconds


def fleetcast_train(channel: Path, root: Path, **hyperparameters: str) -> dict:
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
    return {**summary, "wall_seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=365)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    quiet_third_party()

    work = Path(tempfile.mkdtemp(prefix="fleetcast-bench-train-"))
    try:
        channel = work / "customers"
        write_fleet(channel, args.customers, args.rows)
        base_seconds, base_fit = baseline_loop(channel, work / "baseline")
        no_holdout = fleetcast_train(channel, work / "b", holdout_days="0")
        holdout = fleetcast_train(channel, work / "c")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n = args.customers
    base_rate = n / base_seconds
    rows = [
        ("(a) sequential loop (blog)", base_rate, 1.0, (base_seconds - base_fit) / base_fit),
        (
            "(b) fleetcast train, holdout off",
            no_holdout["models_per_second"],
            None,
            no_holdout["overhead_fraction"],
        ),
        (
            "(c) fleetcast train, 7-day holdout",
            holdout["models_per_second"],
            None,
            holdout["overhead_fraction"],
        ),
    ]
    print(f"\n{n} customers x {args.rows} daily rows, {os.cpu_count()} CPUs, workers={no_holdout['workers']}")
    print(f"{'run':38} {'models/s':>9} {'vs (a)':>7} {'overhead/fit':>13}")
    for name, rate, _, overhead in rows:
        print(f"{name:38} {rate:9.1f} {rate / base_rate:6.2f}x {overhead:12.1%}")


if __name__ == "__main__":
    main()
