"""`fleetcast generate --drivers`: temperature that drives consumption, and holiday dips from the calendar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fleetcast.cli import main as cli_main
from fleetcast.data.generate import driver_series, generate_csv
from fleetcast.model import country_holidays


def test_the_csv_has_a_temperature_column_and_is_seeded(tmp_path: Path) -> None:
    out = tmp_path / "fleet.csv"
    args = ["generate", "--drivers", "--country", "DE", "--customers", "4", "--rows-per-customer", "60"]
    assert cli_main([*args, "--out", str(out)]) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["customer_id", "timestamp", "consumption", "temperature"]
    assert len(frame) == 240 and frame["temperature"].notna().all()
    again = tmp_path / "again.csv"
    generate_csv(again, 4, 42, "2022-01-01", "2023-01-01", 60, "D", drivers=True, country="DE")
    assert again.read_bytes() == out.read_bytes()
    plain = tmp_path / "plain.csv"
    generate_csv(plain, 4, 42, rows_per_customer=60)
    assert plain.read_text().splitlines()[0] == "customer_id,timestamp,consumption"


def test_an_unknown_country_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="'XX' is not"):
        generate_csv(tmp_path / "x.csv", 1, 42, drivers=True, country="XX")


def test_cold_days_and_holidays_move_consumption() -> None:
    grid = pd.date_range("2021-01-01", "2023-01-01", freq="D", inclusive="left")
    cold_effect, holiday_effect, seasons = [], [], []
    for customer in range(20):
        stamps, values, temperature = driver_series(customer, 42, grid, len(grid), "US")
        ns = stamps.to_numpy(dtype="datetime64[ns]").view(np.int64)
        names = country_holidays.training_names("US", ns)
        holiday = country_holidays.features("US", names, ns).max(axis=1) > 0
        weekday = stamps.day_of_week.to_numpy()
        # Same weekday, one week apart: the weekly cycle cancels, temperature and holidays do not.
        week_later = np.arange(len(values) - 7)
        change = values[week_later + 7] - values[week_later]
        cooler = temperature[week_later + 7] - temperature[week_later]
        ordinary = ~holiday[week_later] & ~holiday[week_later + 7] & (temperature[week_later] < 10)
        cold_effect.append(np.corrcoef(change[ordinary], cooler[ordinary])[0, 1])
        on = np.flatnonzero(holiday[week_later + 7] & ~holiday[week_later])
        holiday_effect.append(np.median(change[on] / values[week_later][on]))
        seasons.append(temperature[stamps.month == 7].mean() - temperature[stamps.month == 1].mean())
        assert set(weekday) == set(range(7))
    assert np.median(cold_effect) < -0.5  # warmer than a week ago: less heating
    assert np.median(holiday_effect) < -0.15  # a holiday dips demand by a fifth or more
    assert min(seasons) > 10  # summers are warmer than winters
