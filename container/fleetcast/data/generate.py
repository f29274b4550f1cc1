"""A seeded synthetic fleet: `customer_id,timestamp,consumption` with real seasonality.

Consumption follows level x (1 + yearly + weekly [+ daily] sinusoids of time in days) + noise, clipped to
0..1000, with each customer's level, amplitudes and phases drawn from its own generator. Customer i's rows
depend only on (seed, i), and rows are written one customer at a time, so memory does not grow with N.

With `drivers`, each customer also gets a `temperature` column (its climate's seasonal cycle plus
day-to-day weather that persists, AR(1), and a daily cycle for sub-daily grids), and consumption is driven
by it through heating and cooling degrees instead of a yearly sinusoid; public holidays of a country's
calendar (`model/country_holidays.py`, the calendar training uses) cut demand like a Sunday does.
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
DRIVERS_HEADER = "customer_id,timestamp,consumption,temperature\n"
DAYS_PER_YEAR = 365.25
MAX_CONSUMPTION = 1000.0
DEFAULT_COUNTRY = "US"
HEATING_BASE_C, COOLING_BASE_C = 15.5, 22.0  # degree-day base temperatures
WARMEST_DAY = 200  # of the year, northern hemisphere (mid July)


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


def driver_series(
    customer: int, seed: int, grid: pd.DatetimeIndex, rows: int, country: str = DEFAULT_COUNTRY
) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """One customer's timestamps, consumption driven by temperature and holidays, and the temperature."""
    from fleetcast.model import country_holidays

    rng = np.random.default_rng([seed, customer, 1])
    slots = np.sort(rng.choice(len(grid), size=rows, replace=rows > len(grid)))
    stamps = grid[slots]
    days = (stamps - pd.Timestamp("2000-01-01")).to_numpy(dtype="timedelta64[s]").astype(np.float64) / 86400.0
    sub_daily = len(grid) > 1 and grid[1] - grid[0] < pd.Timedelta(days=1)

    # The customer's climate, then weather: anomalies that persist from day to day (AR(1) per day).
    mean_c, swing_c = rng.uniform(6.0, 14.0), rng.uniform(7.0, 12.0)
    day_of_year = stamps.day_of_year.to_numpy()
    first_day = int(np.floor(days[0]))
    day_index = np.floor(days).astype(np.int64) - first_day
    anomaly = np.empty(int(day_index[-1]) + 1)
    anomaly[0] = rng.normal(0.0, 3.0)
    shocks = rng.normal(0.0, 3.0 * np.sqrt(1 - 0.7**2), len(anomaly))
    for day in range(1, len(anomaly)):
        anomaly[day] = 0.7 * anomaly[day - 1] + shocks[day]
    temperature = mean_c + swing_c * np.cos(2 * np.pi * (day_of_year - WARMEST_DAY) / DAYS_PER_YEAR)
    temperature = temperature + anomaly[day_index]
    if sub_daily:  # warmest mid-afternoon
        temperature = temperature + 4.0 * np.cos(2 * np.pi * (days - np.floor(days) - 15 / 24))

    level = rng.uniform(150.0, 550.0)
    heating = rng.uniform(0.025, 0.045) * np.maximum(HEATING_BASE_C - temperature, 0.0)
    cooling = rng.uniform(0.02, 0.04) * np.maximum(temperature - COOLING_BASE_C, 0.0)
    weekly = rng.uniform(0.08, 0.2) * np.sin(2 * np.pi * days / 7.0 + rng.uniform(0, 2 * np.pi))
    shape = 1.0 + heating + cooling + weekly
    if sub_daily:
        shape += rng.uniform(0.1, 0.3) * np.sin(2 * np.pi * days + rng.uniform(0, 2 * np.pi))
    ns = stamps.to_numpy(dtype="datetime64[ns]").view(np.int64)
    holiday_days = [day for day, _ in country_holidays.calendar(country, country_holidays.year_list(ns))]
    on_holiday = np.isin(country_holidays.days(ns), holiday_days)
    shape *= np.where(on_holiday, 1.0 - rng.uniform(0.2, 0.35), 1.0)
    noise = rng.normal(0.0, rng.uniform(0.015, 0.03) * level, size=rows)
    values = np.clip(level * shape + noise, 0.0, MAX_CONSUMPTION)
    return stamps, values, np.round(temperature, 2)


def write_rows(
    out: TextIO,
    customer: int,
    stamps: pd.DatetimeIndex,
    values: np.ndarray,
    temperature: np.ndarray | None = None,
) -> None:
    text = stamps.strftime("%Y-%m-%d %H:%M:%S")
    if temperature is None:
        out.writelines(f"{customer},{t},{v:.3f}\n" for t, v in zip(text, values, strict=True))
    else:
        out.writelines(
            f"{customer},{t},{v:.3f},{c:.2f}\n" for t, v, c in zip(text, values, temperature, strict=True)
        )


def generate_csv(
    out: Path,
    customers: int = 1000,
    seed: int = 42,
    start: str = "2022-01-01",
    end: str = "2023-01-01",
    rows_per_customer: int = 365,
    freq: str = "D",
    drivers: bool = False,
    country: str = DEFAULT_COUNTRY,
) -> None:
    if customers < 1 or rows_per_customer < 1:
        raise SystemExit("generate: --customers and --rows-per-customer must be at least 1")
    if drivers:
        from fleetcast.model import country_holidays

        try:
            country_holidays.validate_country(country)
        except country_holidays.UnknownCountryError as exc:
            raise SystemExit(f"generate: --country: {exc}") from None
    grid = _timestamp_grid(start, end, freq)
    began = time.perf_counter()
    to_stdout = str(out) == "-"
    if not to_stdout:
        out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp") if not to_stdout else None
    with nullcontext(sys.stdout) if to_stdout else open(tmp, "w", newline="") as handle:  # type: ignore[arg-type]
        handle.write(DRIVERS_HEADER if drivers else HEADER)
        for customer in range(customers):
            if drivers:
                stamps, values, temperature = driver_series(customer, seed, grid, rows_per_customer, country)
                write_rows(handle, customer, stamps, values, temperature)
            else:
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
