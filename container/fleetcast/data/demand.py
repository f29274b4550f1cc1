"""A seeded half-hourly electricity demand simulator: a regional load curve, for model-quality benches.

Real load curves are what per-customer model selection has to get right on sub-daily data, and no public
half-hourly demand series ships with a package this project may depend on, so this builds one from the
parts that shape real demand:

- a daily profile per day type: working days (night trough, a steep morning ramp, a day plateau, an
  early-evening peak), Saturdays (a later, lower rise) and Sundays (lower still);
- the weather: daily mean temperature follows the season plus persistent anomalies (AR(1) from day to
  day); demand rises with heating and cooling degrees, so the level drifts over the weeks;
- daylight: the evening lighting bump sits at sunset, which moves through the season;
- noise: slow multiplicative deviations within the day (AR(1) over half-hours) plus a small white part.

`half_hourly_demand(weeks, seed)` returns the timestamps and values (MW-like, around 30,000); the same
(weeks, seed, start) always gives the same series.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

STEP = "30min"
STEPS_PER_DAY = 48
START = "2000-06-05"  # a Monday in early summer, as the classic 12-week half-hourly demand series
BASE_LOAD = 30_000.0
COMFORT_C = 16.0  # degrees where neither heating nor cooling draws power
HEATING_PER_C, COOLING_PER_C = 0.012, 0.008  # share of base load per degree below / above comfort


def _bump(hour: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((hour - centre) / width) ** 2)


def _profile(hour: np.ndarray, day_type: np.ndarray, sunset: np.ndarray) -> np.ndarray:
    """Relative demand by hour of day for working days (0), Saturdays (1) and Sundays (2)."""
    ramp_at = np.choose(day_type, [6.8, 8.3, 9.0])  # hour the morning rise is half done
    ramp = 1 / (1 + np.exp(-(hour - ramp_at) / 0.6))
    evening_fall = 1 / (1 + np.exp((hour - 22.3) / 0.9))
    plateau = np.choose(day_type, [0.36, 0.24, 0.19])
    lunch = np.choose(day_type, [0.03, 0.05, 0.08]) * _bump(hour, 12.8, 1.0)  # Sunday lunch cooking
    evening = np.choose(day_type, [0.07, 0.05, 0.06]) * _bump(hour, 18.0, 1.3)
    lighting = 0.05 * _bump(hour, sunset, 0.8)
    return 0.68 + plateau * ramp * evening_fall + lunch + evening + lighting


def half_hourly_demand(weeks: int = 12, seed: int = 0, start: str = START) -> tuple[np.ndarray, np.ndarray]:
    """`weeks` whole weeks of half-hourly demand: (datetime64[ns] timestamps, values)."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range(start, periods=weeks * 7 * STEPS_PER_DAY, freq=STEP)
    day = np.arange(len(ds)) // STEPS_PER_DAY
    days = weeks * 7
    hour = (np.arange(len(ds)) % STEPS_PER_DAY) / 2
    weekday = ds.day_of_week.to_numpy()
    day_type = np.where(weekday < 5, 0, weekday - 4)  # 0 working day, 1 Saturday, 2 Sunday

    day_of_year = ds.day_of_year.to_numpy() + hour / 24
    season_c = 11.0 - 7.0 * np.cos(2 * np.pi * (day_of_year - 20) / 365.25)
    anomaly = np.zeros(days)
    for d in range(1, days):  # persistent weather: spells of warm and cool days
        anomaly[d] = 0.8 * anomaly[d - 1] + rng.normal(0, 1.6)
    within_day_c = 4.0 * np.sin(2 * np.pi * (hour - 9) / 24)
    temperature = season_c + anomaly[day] + within_day_c
    weather = 1 + HEATING_PER_C * np.maximum(COMFORT_C - temperature, 0)
    weather += COOLING_PER_C * np.maximum(temperature - COMFORT_C - 4, 0)

    sunset = 21.3 - 2.2 * np.sin(np.pi * (day_of_year - 172) / 365.25) ** 2 * np.sign(day_of_year - 172)
    shape = _profile(hour, day_type, sunset)

    slow = np.zeros(len(ds))
    shocks = rng.normal(0, 0.004, len(ds))
    for i in range(1, len(ds)):
        slow[i] = 0.95 * slow[i - 1] + shocks[i]
    values = BASE_LOAD * shape * weather * (1 + slow) * (1 + rng.normal(0, 0.002, len(ds)))
    return ds.to_numpy(dtype="datetime64[ns]"), values
