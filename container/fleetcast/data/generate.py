"""A seeded synthetic fleet: `customer_id,timestamp,consumption` with real seasonality.

Consumption follows level x (1 + yearly + weekly [+ daily] sinusoids of time in days) + noise, clipped to
0..1000, with each customer's level, amplitudes and phases drawn from its own generator. Customer i's rows
depend only on (seed, i), and rows are written one customer at a time, so memory does not grow with N.
"""

from __future__ import annotations

import logging
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

HEADER = "customer_id,timestamp,consumption\n"
DAYS_PER_YEAR = 365.25
MAX_CONSUMPTION = 1000.0


def _timestamp_grid(start: str, end: str, freq: str) -> pd.DatetimeIndex:
    grid = pd.date_range(start=start, end=end, freq=freq, inclusive="left")
    if len(grid) == 0:
        raise ValueError(f"no timestamps between {start} and {end} at frequency {freq!r}")
    return grid


def customer_series(
    customer: int, seed: int, grid: pd.DatetimeIndex, rows: int
) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """One customer's timestamps (sorted) and consumption values."""
    rng = np.random.default_rng([seed, customer])
    slots = np.sort(rng.choice(len(grid), size=rows, replace=rows > len(grid)))
    stamps = grid[slots]
    days = (stamps - pd.Timestamp("2000-01-01")).to_numpy(dtype="timedelta64[s]").astype(np.float64) / 86400.0

    level = rng.uniform(150.0, 550.0)
    yearly = rng.uniform(0.15, 0.35) * np.sin(2 * np.pi * days / DAYS_PER_YEAR + rng.uniform(0, 2 * np.pi))
    weekly = rng.uniform(0.08, 0.2) * np.sin(2 * np.pi * days / 7.0 + rng.uniform(0, 2 * np.pi))
    shape = 1.0 + yearly + weekly
    # Grid spacing, not `pd.Timedelta(grid.freq)`: that raises for calendar frequencies such as W or MS.
    if len(grid) > 1 and grid[1] - grid[0] < pd.Timedelta(days=1):
        shape += rng.uniform(0.1, 0.3) * np.sin(2 * np.pi * days + rng.uniform(0, 2 * np.pi))
    noise = rng.normal(0.0, rng.uniform(0.02, 0.06) * level, size=rows)
    values = np.clip(level * shape + noise, 0.0, MAX_CONSUMPTION)
    return stamps, values


def write_rows(out: TextIO, customer: int, stamps: pd.DatetimeIndex, values: np.ndarray) -> None:
    text = stamps.strftime("%Y-%m-%d %H:%M:%S")
    out.writelines(f"{customer},{t},{v:.3f}\n" for t, v in zip(text, values, strict=True))


def generate_csv(
    out: Path,
    customers: int = 1000,
    seed: int = 42,
    start: str = "2022-01-01",
    end: str = "2023-01-01",
    rows_per_customer: int = 365,
    freq: str = "D",
) -> None:
    if customers < 1 or rows_per_customer < 1:
        raise SystemExit("generate: --customers and --rows-per-customer must be at least 1")
    grid = _timestamp_grid(start, end, freq)
    began = time.perf_counter()
    to_stdout = str(out) == "-"
    if not to_stdout:
        out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp") if not to_stdout else None
    with nullcontext(sys.stdout) if to_stdout else open(tmp, "w", newline="") as handle:  # type: ignore[arg-type]
        handle.write(HEADER)
        for customer in range(customers):
            stamps, values = customer_series(customer, seed, grid, rows_per_customer)
            write_rows(handle, customer, stamps, values)
    if tmp is not None:
        tmp.replace(out)
        log.info(
            "wrote %s: %d customers x %d rows in %.1fs",
            out,
            customers,
            rows_per_customer,
            time.perf_counter() - began,
        )
