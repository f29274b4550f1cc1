"""Test helpers: small generated fleets laid out the ways a training channel can hold them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fleetcast.data.generate import customer_series
from fleetcast.data.layout import CUSTOMER_FILE, INPUT_COLUMNS, TIME_COLUMN, VALUE_COLUMN

GRID = pd.date_range("2022-01-01", periods=120, freq="D")


def customer_rows(customer: int, seed: int = 7, rows: int = 120) -> pd.DataFrame:
    stamps, values = customer_series(customer, seed, GRID, rows)
    return pd.DataFrame({TIME_COLUMN: stamps.strftime("%Y-%m-%d %H:%M:%S"), VALUE_COLUMN: values.round(3)})


def write_folder_layout(channel: Path, customers: range, seed: int = 7, rows: int = 120) -> None:
    for customer in customers:
        folder = channel / str(customer)
        folder.mkdir(parents=True, exist_ok=True)
        customer_rows(customer, seed, rows).to_csv(folder / CUSTOMER_FILE, index=False)


def write_flat_layout(channel: Path, customers: range, seed: int = 7) -> None:
    channel.mkdir(parents=True, exist_ok=True)
    for customer in customers:
        customer_rows(customer, seed).to_csv(channel / f"{customer}.csv", index=False, header=False)


def write_bucket_layout(channel: Path, customers: range, buckets: int = 2, seed: int = 7) -> None:
    channel.mkdir(parents=True, exist_ok=True)
    frames: dict[int, list[pd.DataFrame]] = {b: [] for b in range(buckets)}
    for customer in customers:
        frames[customer % buckets].append(customer_rows(customer, seed).assign(customer_id=str(customer)))
    for bucket, parts in frames.items():
        if parts:
            frame = pd.concat(parts)[list(INPUT_COLUMNS)]
            frame.to_csv(channel / f"part-{bucket:05d}.csv", index=False)


def write_hyperparameters(root: Path, **values: str) -> None:
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(values))


def require_java() -> None:
    """Skip a test that needs Java (under FLEETCAST_CI=1 the skip fails the run: tests/conftest.py)."""
    import shutil

    if shutil.which("java"):
        return
    pytest.skip("Java is not installed; Multi Model Server needs a JRE")
