"""A seeded half-hourly electricity demand simulator: a regional load curve, for model-quality benches.

Real load curves are what per-customer model selection has to get right on sub-daily data. One real series
is at hand (Taylor's, bench/taylor.py); this builds as many more as wanted, from the parts that shape real
demand, each with its best possible forecast known:

- a daily profile per day type: working days (night trough, a steep morning ramp, a day plateau, an
  early-evening peak), Saturdays (a later, lower rise) and Sundays (lower still);
- the weather: daily mean temperature follows the season plus persistent anomalies (AR(1) from day to
  day); demand rises with heating and cooling degrees, so the level drifts over the weeks;
- daylight: the evening lighting bump sits at sunset, which moves through the season;
- noise: slow multiplicative deviations within the day (AR(1) over half-hours) plus a small white part.

`half_hourly_demand(weeks, seed)` returns the timestamps and values (MW-like, around 30,000); the same
(weeks, seed, start) always gives the same series. `expected_demand` is the best forecast there can be of
such a series: the mean of what follows a point, given everything the simulator knew there (its load
shapes, the weather's and the noise's state). It is the yardstick for "never worse than naive": no
forecaster does better on average, so a holdout week on which even it loses to last week's values is a
week on which last week was lucky (bench/quality.py prints it beside the shipped model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

STEP = "30min"
STEPS_PER_DAY = 48
START = "2000-06-05"  # a Monday in early summer, as the classic 12-week half-hourly demand series
BASE_LOAD = 30_000.0
COMFORT_C = 16.0  # degrees where neither heating nor cooling draws power
COOLING_FROM_C = COMFORT_C + 4  # degrees above which cooling draws power
HEATING_PER_C, COOLING_PER_C = 0.012, 0.008  # share of base load per degree below / above those
ANOMALY_PERSISTENCE, ANOMALY_SD_C = 0.8, 1.6  # the day-to-day weather anomaly: AR(1), Gaussian shocks
SLOW_PERSISTENCE, SLOW_SD = 0.95, 0.004  # the within-day deviation: AR(1) over half-hours
WHITE_SD = 0.002


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


def _weather(temperature: np.ndarray) -> np.ndarray:
    """Demand's weather factor at a temperature: heating below comfort, cooling well above it."""
    heating = HEATING_PER_C * np.maximum(COMFORT_C - temperature, 0)
    return 1 + heating + COOLING_PER_C * np.maximum(temperature - COOLING_FROM_C, 0)


@dataclass(frozen=True)
class _Process:
    """Every part of one simulated series, so its values and their conditional mean share one definition."""

    ds: np.ndarray  # datetime64[ns]
    day: np.ndarray  # day number of each step
    climate_c: np.ndarray  # temperature without the weather anomaly: season plus the daily swing
    anomaly: np.ndarray  # per day
    shape: np.ndarray  # the day type's load shape (with the day's sunset)
    slow: np.ndarray  # per step
    values: np.ndarray


def _simulate(weeks: int, seed: int, start: str) -> _Process:
    rng = np.random.default_rng(seed)
    stamps = pd.date_range(start, periods=weeks * 7 * STEPS_PER_DAY, freq=STEP)
    day = np.arange(len(stamps)) // STEPS_PER_DAY
    days = weeks * 7
    hour = (np.arange(len(stamps)) % STEPS_PER_DAY) / 2
    weekday = stamps.day_of_week.to_numpy()
    day_type = np.where(weekday < 5, 0, weekday - 4)  # 0 working day, 1 Saturday, 2 Sunday

    day_of_year = stamps.day_of_year.to_numpy() + hour / 24
    season_c = 11.0 - 7.0 * np.cos(2 * np.pi * (day_of_year - 20) / 365.25)
    anomaly = np.zeros(days)
    for d in range(1, days):  # persistent weather: spells of warm and cool days
        anomaly[d] = ANOMALY_PERSISTENCE * anomaly[d - 1] + rng.normal(0, ANOMALY_SD_C)
    climate_c = season_c + 4.0 * np.sin(2 * np.pi * (hour - 9) / 24)

    sunset = 21.3 - 2.2 * np.sin(np.pi * (day_of_year - 172) / 365.25) ** 2 * np.sign(day_of_year - 172)
    shape = _profile(hour, day_type, sunset)

    slow = np.zeros(len(stamps))
    shocks = rng.normal(0, SLOW_SD, len(stamps))
    for i in range(1, len(stamps)):
        slow[i] = SLOW_PERSISTENCE * slow[i - 1] + shocks[i]
    weather = _weather(climate_c + anomaly[day])
    values = BASE_LOAD * shape * weather * (1 + slow) * (1 + rng.normal(0, WHITE_SD, len(stamps)))
    return _Process(stamps.to_numpy(dtype="datetime64[ns]"), day, climate_c, anomaly, shape, slow, values)


def half_hourly_demand(weeks: int = 12, seed: int = 0, start: str = START) -> tuple[np.ndarray, np.ndarray]:
    """`weeks` whole weeks of half-hourly demand: (datetime64[ns] timestamps, values)."""
    process = _simulate(weeks, seed, start)
    return process.ds, process.values


def expected_demand(weeks: int, seed: int, origin: int, start: str = START) -> np.ndarray:
    """The conditional mean of `half_hourly_demand(weeks, seed, start)` at every step after the first
    `origin` steps, given the simulator's whole state at step `origin - 1`.

    The three random parts are independent, so the mean is the product of their means: the weather
    factor's (the anomaly `k` days on is Gaussian, mean persistence^k x today's; a hinge of a Gaussian has
    a closed-form mean), the slow deviation's (persistence^j x the last one, `j` steps on) and the white
    noise's (1).
    """
    process = _simulate(weeks, seed, start)
    if not 0 < origin < len(process.values):
        raise ValueError(f"origin {origin} is not inside the series' {len(process.values)} steps")
    last_day = process.day[origin - 1]
    days_on = process.day[origin:] - last_day
    mean = process.climate_c[origin:] + ANOMALY_PERSISTENCE**days_on * process.anomaly[last_day]
    variance = ANOMALY_SD_C**2 * (1 - ANOMALY_PERSISTENCE ** (2 * days_on)) / (1 - ANOMALY_PERSISTENCE**2)
    sd = np.sqrt(variance)
    weather = (
        1
        + HEATING_PER_C * _hinge_mean(COMFORT_C - mean, sd)
        + COOLING_PER_C * _hinge_mean(mean - COOLING_FROM_C, sd)
    )
    slow = SLOW_PERSISTENCE ** np.arange(1, len(days_on) + 1) * process.slow[origin - 1]
    return BASE_LOAD * process.shape[origin:] * weather * (1 + slow)


def _hinge_mean(mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """E[max(X, 0)] for X ~ Normal(mean, sd) (sd 0: max(mean, 0))."""
    safe = np.where(sd > 0, sd, 1.0)
    z = mean / safe
    cdf = 0.5 * (1 + np.array([math.erf(value / math.sqrt(2)) for value in z.ravel()]).reshape(z.shape))
    pdf = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    return np.where(sd > 0, mean * cdf + safe * pdf, np.maximum(mean, 0))
