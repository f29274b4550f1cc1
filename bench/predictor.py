"""Per-call forecast latency, load time and memory: Prophet's predict against the compiled predictor.

    python -m bench.predictor [--period 7] [--prophet-calls 200] [--compiled-calls 3000]

Fits three models the way `train` does (daily additive, daily multiplicative, hourly), writes and extracts
their artifacts, then in one run measures, per call, for `{"period": 7}` with intervals (1,000 samples)
and without:
  - the predictors servers hold: ProphetPredictor (np.random-seeded Prophet predict) vs CompiledPredictor
    (same answers; replays Prophet's random stream) vs CompiledPredictor(prophet_identical=False)
    (numpy Generator);
  - the bare models: Prophet.predict(frame) vs CompiledModel.predict(dates);
and load paths (model.json -> Prophet, model.json -> compiled, compiled.json -> compiled), bytes held
per loaded model (tracemalloc), and what a process that only serves compiled models imports (RSS).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from fleetcast.data.generate import customer_series
from fleetcast.logs import quiet_third_party
from fleetcast.model import archive
from fleetcast.model.compiled import (
    COMPILED_FILE,
    CompiledModel,
    compile_model,
    compile_model_json,
    future_dates,
)
from fleetcast.model.dates import infer_frequency
from fleetcast.model.prophet_model import fit_prophet, model_from_json, model_to_json
from fleetcast.model.settings import ProphetSettings
from fleetcast.serving.compiled_predictor import CompiledPredictor, compiled_document
from fleetcast.serving.predictor import ProphetPredictor
from fleetcast.serving.protocol import ForecastRequest


def _histories() -> dict[str, tuple[pd.DataFrame, ProphetSettings]]:
    daily = pd.date_range("2022-01-01", "2023-01-01", freq="D", inclusive="left")
    hourly = pd.date_range("2022-01-01", periods=24 * 60, freq="h")
    out = {}
    for name, grid, rows, settings in [
        ("daily additive", daily, 365, ProphetSettings()),
        ("daily multiplicative", daily, 365, replace(ProphetSettings(), seasonality_mode="multiplicative")),
        ("hourly additive", hourly, 24 * 60, ProphetSettings()),
    ]:
        stamps, values = customer_series(len(out), 42, grid, rows)
        out[name] = (pd.DataFrame({"ds": stamps, "y": values}), settings)
    return out


def _model_dirs(root: Path) -> dict[str, Path]:
    import tarfile

    dirs = {}
    for index, (name, (history, settings)) in enumerate(_histories().items()):
        model = fit_prophet(history, settings)
        metadata = {
            "customer": str(index),
            "end": history["ds"].iloc[-1].isoformat(),
            "freq": infer_frequency(history["ds"]),
        }
        archive_path = archive.write_archive(root / "archives", str(index), model_to_json(model), metadata)
        target = root / "models" / str(index) / "model"
        target.mkdir(parents=True)
        with tarfile.open(archive_path) as tar:
            tar.extractall(target, filter="data")
        dirs[name] = target
    return dirs


def _latency(call: Callable[[], object], calls: int) -> tuple[float, float]:
    """(p50, p99) in milliseconds over `calls` calls, after a warm-up."""
    for _ in range(min(20, calls)):
        call()
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    p50, p99 = np.percentile(times, [50, 99]) * 1000
    return float(p50), float(p99)


def _held_bytes(load: Callable[[], object], copies: int = 10) -> float:
    """Bytes allocated and still held per loaded object (tracemalloc), averaged over `copies` loads."""
    load()  # first-use allocations (caches, lazy imports) are not the model's
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    kept = [load() for _ in range(copies)]
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    held = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    del kept
    return held / copies


# Current RSS from /proc: ru_maxrss would include the parent's size (Linux keeps it across fork + exec).
IMPORT_PROBE = """
import sys, json
from fleetcast.serving.compiled_predictor import load_predictor
from fleetcast.serving.protocol import ForecastRequest
p = load_predictor(sys.argv[1])
p.forecast(ForecastRequest(7))
rss_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
print(json.dumps({"rss_mb": rss_kb / 1024,
                  "prophet_imported": "prophet" in sys.modules, "pandas_imported": "pandas" in sys.modules,
                  "cmdstanpy_imported": "cmdstanpy" in sys.modules}))
"""
# RSS growth while holding many loaded models in one process (what a multi-model server pays per model).
RSS_PER_MODEL_PROBE = """
import gc, sys, json
from fleetcast.serving.compiled_predictor import CompiledPredictor
from fleetcast.serving.predictor import ProphetPredictor
load = CompiledPredictor.load if sys.argv[2] == "compiled" else ProphetPredictor.load
count = int(sys.argv[3])
def rss_kb():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
load(sys.argv[1])  # first-use imports and caches
gc.collect()
before = rss_kb()
kept = [load(sys.argv[1]) for _ in range(count)]
gc.collect()
print(json.dumps({"kib_per_model": (rss_kb() - before) / count}))
"""

PROPHET_PROBE = IMPORT_PROBE.replace(
    "from fleetcast.serving.compiled_predictor import load_predictor",
    "from fleetcast.serving.predictor import ProphetPredictor\nload_predictor = ProphetPredictor.load",
)


def _probe(script: str, model_dir: Path, *extra: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", script, str(model_dir), *extra], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _row(label: str, p50: float, p99: float, base: tuple[float, float] | None) -> str:
    ratio = f"{base[0] / p50:8.0f}x {base[1] / p99:7.0f}x" if base else f"{'-':>9} {'-':>8}"
    return f"  {label:<76} {p50:9.3f} {p99:9.3f} {ratio}"


def _latency_table(model_dir: Path, args: argparse.Namespace) -> None:
    prophet = ProphetPredictor.load(model_dir)
    exact = CompiledPredictor.load(model_dir)
    fast = CompiledPredictor.load(model_dir, prophet_identical=False)
    model, compiled = prophet.model, exact.compiled
    dates = future_dates(exact.last_observation, args.period, exact.freq)
    frame = pd.DataFrame({"ds": dates})

    def bare_prophet(intervals: bool) -> object:
        if intervals:
            return model.predict(frame)
        saved, model.uncertainty_samples = model.uncertainty_samples, 0
        try:
            return model.predict(frame)
        finally:
            model.uncertainty_samples = saved

    for intervals in (True, False):
        request = ForecastRequest(args.period, intervals=intervals)
        tag = "with intervals (1000 samples)" if intervals else "without intervals"
        base = _latency(lambda request=request: prophet.forecast(request), args.prophet_calls)
        print(_row(f"ProphetPredictor.forecast, {tag}", *base, None))
        got = _latency(lambda request=request: exact.forecast(request), args.compiled_calls)
        print(_row(f"CompiledPredictor.forecast (Prophet's draws), {tag}", *got, base))
        if intervals:
            got = _latency(lambda request=request: fast.forecast(request), args.compiled_calls)
            print(_row(f"CompiledPredictor.forecast (Generator), {tag}", *got, base))
        base = _latency(lambda intervals=intervals: bare_prophet(intervals), args.prophet_calls)
        print(_row(f"Prophet.predict(frame), {tag}", *base, None))
        got = _latency(
            lambda intervals=intervals: compiled.predict(dates, intervals=intervals), args.compiled_calls
        )
        print(_row(f"CompiledModel.predict(dates), {tag}", *got, base))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--period", type=int, default=7)
    parser.add_argument("--prophet-calls", type=int, default=200)
    parser.add_argument("--compiled-calls", type=int, default=3000)
    args = parser.parse_args(argv)
    quiet_third_party()
    logging.getLogger("fleetcast").setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        dirs = _model_dirs(Path(tmp))
        print(
            f"forecast latency per call, period {args.period}, ms (ratio = Prophet / compiled, p50 and p99)"
        )
        print(f"  {'':<76} {'p50':>9} {'p99':>9} {'x p50':>9} {'x p99':>8}")
        for name, model_dir in dirs.items():
            print(f"{name}:")
            _latency_table(model_dir, args)

        model_dir = dirs["daily additive"]
        model_json = (model_dir / "model.json").read_text()
        compiled_text = compiled_document(model_json)
        with_compiled = Path(tmp) / "with-compiled"
        with_compiled.mkdir()
        for file in model_dir.iterdir():
            (with_compiled / file.name).write_text(file.read_text())
        (with_compiled / COMPILED_FILE).write_text(compiled_text)

        print("\nload (daily additive model), ms")
        loads = {
            "model.json -> Prophet (model_from_json)": lambda: model_from_json(model_json),
            "model.json -> Prophet -> compile_model": lambda: compile_model(model_from_json(model_json)),
            "model.json -> compile_model_json (no Prophet)": lambda: compile_model_json(model_json),
            "compiled.json -> CompiledModel.from_dict": lambda: CompiledModel.from_dict(
                json.loads(compiled_text)
            ),
            "ProphetPredictor.load(dir)": lambda: ProphetPredictor.load(model_dir),
            "CompiledPredictor.load(dir) from model.json": lambda: CompiledPredictor.load(model_dir),
            "CompiledPredictor.load(dir) from compiled.json": lambda: CompiledPredictor.load(with_compiled),
        }
        for label, load in loads.items():
            p50, p99 = _latency(load, 50 if "Prophet" in label.split(" -> ")[-1] else 300)
            print(f"  {label:<52} p50 {p50:8.3f}  p99 {p99:8.3f}")
        print(f"  sizes: model.json {len(model_json):,} B, compiled.json {len(compiled_text):,} B")

        print("\nmemory held per loaded model (tracemalloc, daily additive)")
        prophet_bytes = _held_bytes(lambda: ProphetPredictor.load(model_dir))
        compiled_bytes = _held_bytes(lambda: CompiledPredictor.load(with_compiled))
        print(f"  ProphetPredictor   {prophet_bytes / 1024:10.1f} KiB")
        ratio = prophet_bytes / compiled_bytes
        print(f"  CompiledPredictor  {compiled_bytes / 1024:10.1f} KiB   ({ratio:.0f}x smaller)")

        print("\nRSS growth per loaded model, one process holding many (daily additive)")
        compiled_kib = _probe(RSS_PER_MODEL_PROBE, with_compiled, "compiled", "1000")["kib_per_model"]
        prophet_kib = _probe(RSS_PER_MODEL_PROBE, model_dir, "prophet", "100")["kib_per_model"]
        print(f"  ProphetPredictor  (100 loaded)  {prophet_kib:8.1f} KiB per model")
        print(
            f"  CompiledPredictor (1000 loaded) {compiled_kib:8.1f} KiB per model"
            f"  -> {1024 * 1024 / max(compiled_kib, 0.1):,.0f} models per GiB"
        )

        print("\nfresh process: import + load one model + one forecast (RSS)")
        for label, script in (
            ("compiled (load_predictor)", IMPORT_PROBE),
            ("Prophet (ProphetPredictor)", PROPHET_PROBE),
        ):
            facts = _probe(script, model_dir)
            imported = ", ".join(
                name for name in ("prophet", "cmdstanpy", "pandas") if facts[f"{name}_imported"]
            )
            imported = imported or "none of prophet/cmdstanpy/pandas"
            print(f"  {label:<28} {facts['rss_mb']:7.1f} MB   imports: {imported}")


if __name__ == "__main__":
    main()
