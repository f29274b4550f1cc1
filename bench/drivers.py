"""What holidays and temperature are worth: holdout sMAPE with drivers over the same configuration without.

    python -m bench.drivers [--customers 1000] [--country US] [--selection auto]
    python -m bench.drivers --latency [--models 20] [--requests 2000]

On `fleetcast generate --drivers` data (daily, 2021-01-01 .. 2022-12-31, so each holiday is seen a year
before it is held out), `train` runs twice on the same channel in one process: (a) its configuration
without drivers (the temperature column is in the input and ignored), (b) the same configuration plus
`country_holidays=<country>` and `regressors=temperature`. The 7-day holdout is the last week of 2022,
which holds Christmas; (b) scores it with the temperatures that happened (training passes the holdout's
real regressor values, as a request would carry a weather forecast). Prints each run's median holdout
sMAPE, the ratio (b)/(a) (target <= 0.7), the share of customers (b) improves, and (b)'s fit engines (the
target is no Stan fallback).

`--latency`: the warm invoke cost of the drivers through the container API. One lean server (1 worker)
holds N models with US holidays and a temperature regressor and the same N customers' models without;
one keep-alive client invokes them round-robin, period 7 with intervals (1,000 samples), the drivers'
requests carrying 7 temperatures; the two kinds alternate in blocks so they share the machine's load.
Prints p50/p99 of each and the ratio (target: p50 <= 2 ms with drivers).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.training import fleetcast_train
from fleetcast.data.generate import generate_csv
from fleetcast.logs import quiet_third_party
from fleetcast.model import country_holidays

START, END = "2021-01-01", "2023-01-01"  # the last 7 days, 2022-12-25 .. 31, are the holdout
ROWS = 730
HOLDOUT_DAYS = 7
TARGET_RATIO = 0.7
TARGET_P50_MS = 2.0


def holdout_holidays(country: str) -> list[str]:
    """The holidays of the country's calendar in the holdout week, as 'date name'."""
    dates = np.arange("2022-12-25", "2023-01-01", dtype="datetime64[D]")
    days = dates.astype("datetime64[ns]").view(np.int64)
    names = country_holidays.training_names(country, days)
    hits = country_holidays.features(country, names, days)
    found = []
    for date, row in zip(dates, hits, strict=True):
        found += [f"{date} {name}" for name, hit in zip(names, row, strict=True) if hit]
    return found


def smapes(root: Path) -> dict[str, float]:
    with open(root / "output" / "data" / "report-algo-1.csv", newline="") as handle:
        return {r["customer"]: float(r["smape"]) for r in csv.DictReader(handle) if r["smape"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--country", default="US")
    parser.add_argument("--selection", default="auto", help="train's selection hyperparameter, both runs")
    parser.add_argument("--latency", action="store_true", help="time warm invokes instead (see above)")
    parser.add_argument("--models", type=int, default=20, help="--latency: models of each kind")
    parser.add_argument("--requests", type=int, default=2000, help="--latency: timed invokes of each kind")
    args = parser.parse_args()
    if args.latency:
        latency(args.models, args.requests)
        return
    quiet_third_party()
    drivers = {"country_holidays": args.country, "regressors": "temperature"}
    configurations = {
        "(a) without drivers": {},
        "(b) country_holidays + regressors=temperature": drivers,
    }
    runs: dict[str, tuple[dict, dict[str, float], float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-drivers-") as tmp:
        work = Path(tmp)
        channel = work / "channel"
        channel.mkdir()
        bucket = channel / "part-00000.csv"
        generate_csv(bucket, args.customers, 42, START, END, ROWS, "D", drivers=True, country=args.country)
        print(f"{args.customers} customers x {ROWS} daily rows with temperature, {args.country} holidays")
        print(f"holdout 2022-12-25..31 holds: {'; '.join(holdout_holidays(args.country))}")
        common = {"holdout_days": str(HOLDOUT_DAYS), "selection": args.selection}
        for label, extra in configurations.items():
            began = time.perf_counter()
            result = fleetcast_train(channel, work / label[1], **common, **extra)
            runs[label] = (result, smapes(result["root"]), time.perf_counter() - began)
    for label, (result, scores, seconds) in runs.items():
        print(
            f"{label}: {result['trained']} trained in {seconds:.1f} s, median holdout sMAPE "
            f"{statistics.median(scores.values()):.3f} %, engines {result['engines']}, "
            f"models {result['models']}"
        )
    without, with_drivers = (scores for _, scores, _ in runs.values())
    customers = sorted(set(without) & set(with_drivers))
    median_without = statistics.median(without[c] for c in customers)
    median_with = statistics.median(with_drivers[c] for c in customers)
    improved = sum(with_drivers[c] < without[c] for c in customers) / len(customers)
    ratio = median_with / median_without
    verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
    print(
        f"median holdout sMAPE (b)/(a) over {len(customers)} customers: {median_with:.3f} / "
        f"{median_without:.3f} = {ratio:.3f}x (target <= {TARGET_RATIO}x: {verdict}); "
        f"(b) better for {improved:.1%}"
    )
    print(f"load average {os.getloadavg()[0]:.2f}")


def latency(models: int, requests: int) -> None:
    import json

    import pandas as pd

    from bench.serving import KeepAlive, percentile
    from fleetcast.model.settings import ProphetSettings, Regressor
    from tests.serving.models import archive_model, extract
    from tests.support.servers import start_lean

    quiet_third_party()
    plain = ProphetSettings()  # training's defaults: 1,000 uncertainty samples
    drivers = ProphetSettings(country_holidays="US", regressors=(Regressor("temperature"),))
    grid = pd.date_range(START, END, freq="D", inclusive="left")
    week = [4.1, 3.8, 5.0, 2.2, -1.0, 0.5, 3.3]
    bodies = {
        "plain": json.dumps({"period": 7}).encode(),
        "drivers": json.dumps({"period": 7, "regressors": {"temperature": week}}).encode(),
    }
    with tempfile.TemporaryDirectory(prefix="bench-drivers-latency-") as tmp:
        root = Path(tmp)
        names: dict[str, list[str]] = {"plain": [], "drivers": []}
        dirs: dict[str, Path] = {}
        for customer in range(models):
            from fleetcast.data.generate import driver_series

            stamps, values, temperature = driver_series(customer, 42, grid, len(grid), "US")
            history = pd.DataFrame({"ds": stamps, "y": values, "temperature": temperature})
            for kind, settings in (("plain", plain), ("drivers", drivers)):
                frame = history if kind == "drivers" else history[["ds", "y"]]
                archive = archive_model(root / "archives" / kind, str(customer), frame, settings)
                name = f"{kind}-{customer}"
                dirs[name] = extract(archive, root / "models" / name / "model")
                names[kind].append(name)
        with start_lean(root / "lean", workers=1) as server:
            client = KeepAlive(server.port)
            for name, model_dir in dirs.items():
                status, answer = client.post(
                    "/models", json.dumps({"model_name": name, "url": str(model_dir)}).encode()
                )
                if status != 200:
                    raise SystemExit(f"load {name}: {status} {answer[:200]!r}")
            latencies: dict[str, list[float]] = {"plain": [], "drivers": []}
            block = 50
            for start in range(0, requests + len(dirs), block):  # the first pass over every model is warm-up
                for kind in ("plain", "drivers"):
                    for index in range(start, start + block):
                        name = names[kind][index % models]
                        began = time.perf_counter()
                        status, answer = client.post(f"/models/{name}/invoke", bodies[kind])
                        elapsed = (time.perf_counter() - began) * 1000.0
                        rows = json.loads(answer)["forecast"] if status == 200 else []
                        if len(rows) != 7 or "yhat_lower" not in rows[0]:
                            raise SystemExit(f"invoke {name}: {status} {answer[:200]!r}")
                        if index >= models:
                            latencies[kind].append(elapsed)
            client.close()
    for kind, values in latencies.items():
        p50, p99 = percentile(values, 50), percentile(values, 99)
        print(f"{kind:8} {len(values)} warm invokes: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    p50 = {kind: percentile(values, 50) for kind, values in latencies.items()}
    verdict = "met" if p50["drivers"] <= TARGET_P50_MS else "MISSED"
    ratio = p50["drivers"] / p50["plain"]
    print(f"drivers/plain p50 {ratio:.2f}x; drivers p50 <= {TARGET_P50_MS} ms: {verdict}")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
