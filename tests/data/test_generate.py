"""`fleetcast generate`: a seeded fleet with real seasonality, streamed one customer at a time."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fleetcast.cli import main as cli_main
from fleetcast.data.generate import generate_csv


def generate(tmp_path: Path, name: str, **options) -> Path:
    out = tmp_path / name
    generate_csv(out=out, **options)
    return out


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"customer_id": int}, parse_dates=["timestamp"])


def autocorrelation(values: np.ndarray, lag: int) -> float:
    centred = values - values.mean()
    return float(np.dot(centred[:-lag], centred[lag:]) / np.dot(centred, centred))


def detrended(series: pd.Series, window: int) -> np.ndarray:
    """Minus a centred moving average over one full period, which cancels that period's seasonality."""
    trend = series.rolling(window, center=True).mean()
    return (series - trend).dropna().to_numpy()


def test_same_seed_gives_byte_identical_output(tmp_path: Path) -> None:
    a = generate(tmp_path, "a.csv", customers=30, seed=11, rows_per_customer=50)
    b = generate(tmp_path, "b.csv", customers=30, seed=11, rows_per_customer=50)
    assert a.read_bytes() == b.read_bytes()


def test_different_seeds_differ(tmp_path: Path) -> None:
    a = read(generate(tmp_path, "a.csv", customers=10, seed=1, rows_per_customer=50))
    b = read(generate(tmp_path, "b.csv", customers=10, seed=2, rows_per_customer=50))
    assert not a["consumption"].equals(b["consumption"])
    for customer in range(10):  # every customer differs, not just one
        assert not np.array_equal(
            a.loc[a.customer_id == customer, "consumption"], b.loc[b.customer_id == customer, "consumption"]
        )


def test_a_customers_rows_do_not_depend_on_the_fleet_size(tmp_path: Path) -> None:
    small = read(generate(tmp_path, "small.csv", customers=5, seed=9, rows_per_customer=60))
    large = read(generate(tmp_path, "large.csv", customers=40, seed=9, rows_per_customer=60))
    pd.testing.assert_frame_equal(small, large[large.customer_id < 5].reset_index(drop=True))


def test_shape_header_ranges(tmp_path: Path) -> None:
    path = generate(tmp_path, "f.csv", customers=50, seed=3, rows_per_customer=100)
    assert path.read_text().splitlines()[0] == "customer_id,timestamp,consumption"
    frame = read(path)
    assert sorted(frame.customer_id.unique()) == list(range(50))
    assert (frame.groupby("customer_id").size() == 100).all()
    assert frame.consumption.between(0, 1000).all()
    assert frame.timestamp.min() >= pd.Timestamp("2022-01-01")
    assert frame.timestamp.max() < pd.Timestamp("2023-01-01")
    for _, group in frame.groupby("customer_id"):
        assert group.timestamp.is_monotonic_increasing
        assert group.timestamp.is_unique
    # Customers differ in level, not just in noise.
    assert frame.groupby("customer_id").consumption.mean().std() > 50


def test_defaults_are_blog_sized_via_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "fleet.csv"
    assert cli_main(["generate", "--out", str(out), "--seed", "5"]) == 0
    frame = read(out)
    assert frame.customer_id.nunique() == 1000
    assert len(frame) == 365_000
    assert frame.timestamp.dt.normalize().eq(frame.timestamp).all()  # daily data sits at midnight


def test_weekly_seasonality_on_daily_data(tmp_path: Path) -> None:
    frame = read(generate(tmp_path, "d.csv", customers=20, seed=4))  # every day of 2022
    at_week, at_half_week = [], []
    for _, group in frame.groupby("customer_id"):
        residual = detrended(group.set_index("timestamp").consumption, window=7)
        at_week.append(autocorrelation(residual, 7))
        at_half_week.append(autocorrelation(residual, 3))
    # A 7-day cycle: strongly correlated a week apart, anti-correlated half a week apart.
    assert min(at_week) > 0.3, at_week
    assert max(at_half_week) < -0.1, at_half_week


def test_yearly_seasonality_on_daily_data(tmp_path: Path) -> None:
    frame = read(generate(tmp_path, "d.csv", customers=10, seed=8))
    for _, group in frame.groupby("customer_id"):
        monthly = group.set_index("timestamp").consumption.resample("MS").mean()
        # Yearly amplitude is 15-35 % of the level; noise averages out over a month.
        assert monthly.max() - monthly.min() > 0.15 * monthly.mean()


def test_daily_seasonality_on_hourly_data(tmp_path: Path) -> None:
    path = generate(
        tmp_path,
        "h.csv",
        customers=10,
        seed=6,
        freq="h",
        start="2022-03-01",
        end="2022-04-01",
        rows_per_customer=744,
    )
    frame = read(path)
    assert (frame.timestamp.dt.hour.nunique()) == 24
    for _, group in frame.groupby("customer_id"):
        residual = detrended(group.set_index("timestamp").consumption, window=24)
        assert autocorrelation(residual, 24) > 0.3
        assert autocorrelation(residual, 12) < -0.1


@pytest.mark.slow
def test_memory_does_not_grow_with_customers(tmp_path: Path) -> None:
    def peak(customers: int) -> int:
        tracemalloc.start()
        try:
            generate_csv(out=tmp_path / f"{customers}.csv", customers=customers, seed=1, rows_per_customer=50)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(20)  # warm-up: one-time imports and caches
    few, many = peak(200), peak(2_000)
    assert (tmp_path / "2000.csv").stat().st_size > 9 * (tmp_path / "200.csv").stat().st_size
    assert many < few * 1.3 + 256 * 1024, (few, many)


def test_invalid_sizes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="at least 1"):
        generate_csv(out=tmp_path / "x.csv", customers=0)
    with pytest.raises(ValueError, match="no timestamps"):
        generate_csv(out=tmp_path / "x.csv", start="2022-01-02", end="2022-01-01")


@pytest.mark.parametrize("freq", ["W", "MS"])
def test_calendar_frequencies_work(tmp_path: Path, freq: str) -> None:
    frame = read(generate(tmp_path, "c.csv", customers=2, seed=1, freq=freq, rows_per_customer=8))
    assert len(frame) == 16
