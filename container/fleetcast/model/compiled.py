"""A fitted Prophet model reduced to numbers, predicting with a few numpy operations.

Prophet's `predict` builds pandas frames, feature tables and 1,000 simulated futures to return a handful
of values; the arithmetic underneath is a piecewise-linear trend plus Fourier seasonalities. A
`CompiledModel` keeps only what that arithmetic needs (scaling constants, trend parameters, changepoints
in Prophet's scaled time, seasonality periods/orders/modes and their coefficients, the noise scale) and
reproduces, in the same floating-point order as Prophet 1.5:

- the point forecast and its components (`setup_dataframe`, `piecewise_linear`/`flat_trend`,
  `fourier_series`, country holidays (`construct_holiday_dataframe`/`make_holiday_features`, the calendar
  rebuilt for the forecast's years by `country_holidays`), extra regressors standardised with the
  training mean and deviation, `predict_seasonal_components`, `predict`);
- the uncertainty interval (`predict_uncertainty` with the vectorised sampler: future slope changes drawn
  per step with probability "changepoints per unit of scaled time x step", Laplace sizes with scale
  mean|delta|, observation noise sigma_obs; quantiles at `interval_width` over `uncertainty_samples`
  draws; multiplicative seasonality scales the sampled trend, the noise is added afterwards).

Conditional seasonalities are covered when fleetcast computes their condition from the timestamp
(model/conditions.py: weekday/weekend), zeroing their features where it is false as Prophet does.

`compile_model` refuses, with `NotCompilable(reason)`, anything it does not reproduce exactly (logistic
growth, a custom holidays frame, regressors with their own forecasting models, seasonalities conditioned
on an input column, MCMC fits, ...); callers then use Prophet's own `predict` and say so in the log. Dates
are numpy `datetime64` arrays: no pandas on the predict path.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fleetcast.model import country_holidays
from fleetcast.model.archive import COMPILED_FILE  # noqa: F401 - re-exported; the archive spells it
from fleetcast.model.conditions import CONDITIONS, condition_values

if TYPE_CHECKING:
    from prophet import Prophet

    from fleetcast.model.fit.prophet_json import FittedState

FORMAT = "fleetcast-compiled-prophet"
# Version 2 adds holidays and regressors; a model without them is still written as version 1, so older
# readers keep loading it, and refuse (then compile model.json, then fall back) what they cannot predict.
FORMAT_VERSION = 1
DRIVERS_FORMAT_VERSION = 2
READABLE_VERSIONS = (FORMAT_VERSION, DRIVERS_FORMAT_VERSION)

NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND
LAST_NS = int(np.iinfo(np.int64).max)
NAT_NS = int(np.iinfo(np.int64).min)  # NaT as int64 nanoseconds
# 1970-01-01 was a Thursday; numpy weekday numbering follows pandas (Monday = 0).
EPOCH_WEEKDAY = 3
SUPPORTED_GROWTH = ("linear", "flat")
# The Prophet release whose predict this module reproduces (tests compare against the installed one).
VERIFIED_PROPHET = "1.5."
MODES = ("additive", "multiplicative")
RandomSource = np.random.Generator | np.random.RandomState


class NotCompilable(Exception):  # noqa: N818 - the name callers and the issue use
    """The model uses a Prophet feature the compiled predictor does not reproduce exactly."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Seasonality:
    name: str
    period: float  # days
    fourier_order: int
    mode: str  # additive | multiplicative
    condition: str | None = None  # active only where this timestamp condition holds (model/conditions.py)


@dataclass(frozen=True)
class RegressorTerm:
    """An extra regressor column: standardised as (x - mu) / std, as at training time."""

    name: str
    mu: float
    std: float
    mode: str  # additive | multiplicative


@dataclass(frozen=True)
class HolidayTerms:
    """A country's holiday columns: one per holiday name seen in training, in Prophet's column order."""

    country: str
    names: tuple[str, ...]  # column order (sorted feature names)
    training_order: tuple[str, ...]  # train_holiday_names' order (the order of their components)
    mode: str  # holidays_mode


class MissingRegressorError(ValueError):
    """The forecast needs a regressor's values at every date and did not get them (or got a wrong count)."""

    def __init__(self, name: str, expected: int, got: int | None) -> None:
        given = "none" if got is None else str(got)
        super().__init__(f"regressor {name!r} needs {expected} values (one per forecast date); got {given}")
        self.name, self.expected, self.got = name, expected, got


@dataclass(frozen=True)
class Forecast:
    """Predictions for sorted dates; `yhat_lower`/`yhat_upper`/`trend_*` are None without intervals."""

    ds: np.ndarray  # datetime64[ns], ascending
    yhat: np.ndarray
    yhat_lower: np.ndarray | None = None
    yhat_upper: np.ndarray | None = None
    trend_lower: np.ndarray | None = None
    trend_upper: np.ndarray | None = None
    # trend, additive_terms, multiplicative_terms, each seasonality, holiday and regressor by name, and the
    # holidays / extra_regressors_<mode> totals, when asked for
    components: dict[str, np.ndarray] | None = None


class CompiledModel:
    """The numeric form of a fitted (MAP) Prophet model with linear or flat growth."""

    def __init__(
        self,
        *,
        growth: str,
        y_scale: float,
        floor: float,
        start_ns: int,
        t_scale_ns: int,
        k: float,
        m: float,
        deltas: np.ndarray,
        changepoints_t: np.ndarray,
        seasonalities: tuple[Seasonality, ...],
        beta: np.ndarray,
        sigma_obs: float,
        interval_width: float,
        uncertainty_samples: int,
        history_step_t: float,
        holidays: HolidayTerms | None = None,
        regressors: tuple[RegressorTerm, ...] = (),
    ) -> None:
        if growth not in SUPPORTED_GROWTH:
            raise NotCompilable(
                f"growth={growth!r} (compiled predictor covers {', '.join(SUPPORTED_GROWTH)})"
            )
        self.growth = growth
        self.y_scale = float(y_scale)
        self.floor = float(floor)
        self.start_ns = int(start_ns)
        self.t_scale_ns = int(t_scale_ns)
        self.k = float(k)
        self.m = float(m)
        self.deltas = np.asarray(deltas, dtype=np.float64).reshape(-1)
        self.changepoints_t = np.asarray(changepoints_t, dtype=np.float64).reshape(-1)
        self.seasonalities = tuple(seasonalities)
        self.beta = np.asarray(beta, dtype=np.float64).reshape(-1)
        self.sigma_obs = float(sigma_obs)
        self.interval_width = float(interval_width)
        self.uncertainty_samples = int(uncertainty_samples)
        self.history_step_t = float(history_step_t)
        self.holidays = holidays
        self.regressors = tuple(regressors)
        if len(self.deltas) != len(self.changepoints_t):
            raise ValueError(f"{len(self.deltas)} deltas for {len(self.changepoints_t)} changepoints")
        fourier = sum(2 * s.fourier_order for s in self.seasonalities)
        width = fourier + self._holiday_width + len(self.regressors)
        # Prophet keeps a single all-zero placeholder feature when there is no seasonality at all.
        if len(self.beta) != max(width, 1):
            raise ValueError(
                f"{len(self.beta)} coefficients for {fourier} Fourier, {self._holiday_width} holiday and "
                f"{len(self.regressors)} regressor features"
            )
        self._derive()

    @property
    def _holiday_width(self) -> int:
        return 0 if self.holidays is None else len(self.holidays.names)

    @property
    def regressor_names(self) -> tuple[str, ...]:
        """The regressors a forecast needs values of, one per date."""
        return tuple(regressor.name for regressor in self.regressors)

    def _derive(self) -> None:
        """Precompute what every call needs: angular multipliers, per-mode coefficient vectors."""
        multipliers: list[float] = []
        masks = {mode: np.zeros(len(self.beta)) for mode in MODES}
        self._columns: dict[str, slice] = {}
        column = 0
        for season in self.seasonalities:
            # Prophet computes (i + 1) / period, then multiplies by 2*pi*t: keep that order.
            multipliers.extend((i + 1) / season.period for i in range(season.fourier_order))
            width = 2 * season.fourier_order
            self._columns[season.name] = slice(column, column + width)
            masks[season.mode][column : column + width] = 1.0
            column += width
        self._multipliers = np.array(multipliers, dtype=np.float64)
        # Every other component Prophet reports, as (columns, additive?) in its component_cols.
        self._extra_components: dict[str, tuple[np.ndarray, bool]] = {}
        if self.holidays is not None:
            holiday_columns = np.arange(column, column + self._holiday_width)
            masks[self.holidays.mode][holiday_columns] = 1.0
            additive = self.holidays.mode == "additive"
            for name in self.holidays.training_order:
                position = self.holidays.names.index(name)
                self._extra_components[name] = (holiday_columns[position : position + 1], additive)
            self._extra_components["holidays"] = (holiday_columns, additive)
            column += self._holiday_width
        by_mode: dict[str, list[int]] = {mode: [] for mode in MODES}
        for regressor in self.regressors:
            masks[regressor.mode][column] = 1.0
            self._extra_components[regressor.name] = (np.array([column]), regressor.mode == "additive")
            by_mode[regressor.mode].append(column)
            column += 1
        for mode, columns in by_mode.items():
            if columns:
                self._extra_components[f"extra_regressors_{mode}"] = (np.array(columns), mode == "additive")
        self._beta_additive = self.beta * masks["additive"]
        self._beta_multiplicative = self.beta * masks["multiplicative"]
        self._multiplicative = bool(masks["multiplicative"].any())
        self._mean_abs_delta = float(np.mean(np.abs(self.deltas)) + 1e-8)
        self._lower_p = 100 * (1.0 - self.interval_width) / 2
        self._upper_p = 100 * (1.0 + self.interval_width) / 2

    # ---- time and features ------------------------------------------------------------------------

    def scaled_time(self, ds_ns: np.ndarray) -> np.ndarray:
        """Prophet's `t`: (ds - start) / t_scale, as numpy divides timedelta64 by timedelta64."""
        return (ds_ns - self.start_ns).astype(np.float64) / float(self.t_scale_ns)

    def features(self, ds_ns: np.ndarray, regressors: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """The feature matrix as Prophet builds it: [sin 1, cos 1, sin 2, ...] per seasonality, then one
        0/1 column per holiday, then each regressor standardised. `ds_ns` sorted ascending."""
        fourier = 2 * len(self._multipliers)
        width = fourier + self._holiday_width + len(self.regressors)
        if width == 0:
            return np.zeros((len(ds_ns), 1), order="F")
        # Column-major like the DataFrame.values Prophet multiplies, so BLAS sums in the same order.
        out = np.empty((len(ds_ns), width), order="F")
        if fourier:
            days = _days_since_epoch(ds_ns)
            angles = (np.pi * 2 * days)[:, None]
            phase = self._multipliers[None, :] * angles
            out[:, 0:fourier:2] = np.sin(phase)
            out[:, 1:fourier:2] = np.cos(phase)
            for season in self.seasonalities:
                if season.condition is not None:
                    out[~condition_values(season.condition, ds_ns), self._columns[season.name]] = 0
        column = fourier
        if self.holidays is not None:
            out[:, column : column + self._holiday_width] = country_holidays.features(
                self.holidays.country, self.holidays.names, ds_ns
            )
            column += self._holiday_width
        values = self._regressor_values(regressors or {}, len(ds_ns))
        for regressor in self.regressors:
            out[:, column] = (values[regressor.name] - regressor.mu) / regressor.std
            column += 1
        return out

    def _regressor_values(self, regressors: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        """Each regressor's values as float64, one per date; MissingRegressorError names what is missing."""
        checked = {}
        for regressor in self.regressors:
            given = regressors.get(regressor.name)
            if given is None:
                raise MissingRegressorError(regressor.name, rows, None)
            values = np.asarray(given, dtype=np.float64).reshape(-1)
            if len(values) != rows:
                raise MissingRegressorError(regressor.name, rows, len(values))
            if not np.all(np.isfinite(values)):
                raise ValueError(f"regressor {regressor.name!r} has values that are not finite numbers")
            checked[regressor.name] = values
        return checked

    def _trend_scaled(self, t: np.ndarray) -> np.ndarray:
        if self.growth == "flat":
            return self.m * np.ones_like(t)
        # piecewise_linear, term for term
        deltas_t = (self.changepoints_t[None, :] <= t[..., None]) * self.deltas
        k_t = deltas_t.sum(axis=1) + self.k
        m_t = (deltas_t * -self.changepoints_t).sum(axis=1) + self.m
        return k_t * t + m_t

    # ---- prediction --------------------------------------------------------------------------------

    def predict(
        self,
        ds: np.ndarray,
        *,
        intervals: bool = True,
        components: bool = False,
        seed: int | RandomSource | None = None,
        samples: int | None = None,
        regressors: dict[str, Any] | None = None,
    ) -> Forecast:
        """Forecast for `ds` (datetime64, any unit; sorted ascending as Prophet sorts them).

        `regressors` gives each regressor's value at each date of `ds` (in `ds`' order). `seed` makes
        intervals reproducible: an int or a numpy Generator; a legacy RandomState draws the exact stream
        Prophet draws from np.random. `samples` overrides the model's uncertainty_samples. `components`
        adds trend, additive/multiplicative terms, each seasonality, holiday and regressor, and the trend
        bounds.
        """
        ds_ns = _as_ns(ds)
        if len(ds_ns) == 0:
            raise ValueError("no dates to forecast")
        if (ds_ns == NAT_NS).any():
            raise ValueError("dates include NaT")
        values = self._regressor_values(regressors or {}, len(ds_ns))
        if len(ds_ns) > 1 and (ds_ns[1:] < ds_ns[:-1]).any():
            order = np.argsort(ds_ns, kind="mergesort")
            ds_ns = ds_ns[order]
            values = {name: column[order] for name, column in values.items()}
        t = self.scaled_time(ds_ns)
        x = self.features(ds_ns, values)
        expected = self._trend_scaled(t)
        trend = expected * self.y_scale + self.floor
        # (n, K) @ (K, 1) through a transposed row, exactly the product predict_seasonal_components forms.
        additive = np.matmul(x, self._beta_additive[None, :].T)[:, 0] * self.y_scale
        multiplicative = np.matmul(x, self._beta_multiplicative[None, :].T)[:, 0]
        yhat = trend * (1 + multiplicative) + additive

        n_samples = self.uncertainty_samples if samples is None else int(samples)
        bounds: dict[str, np.ndarray | None] = {}
        if intervals and n_samples > 0:
            bounds = self._intervals(
                t, expected, x, n_samples=n_samples, rng=_rng(seed), trend_bounds=components
            )

        parts = None
        if components:
            parts = {"trend": trend, "additive_terms": additive, "multiplicative_terms": multiplicative}
            for season in self.seasonalities:
                beta = np.zeros_like(self.beta)
                cols = self._columns[season.name]
                beta[cols] = self.beta[cols]
                value = np.matmul(x, beta[None, :].T)[:, 0]
                parts[season.name] = value * self.y_scale if season.mode == "additive" else value
            for name, (columns, additive) in self._extra_components.items():
                beta = np.zeros_like(self.beta)
                beta[columns] = self.beta[columns]
                value = np.matmul(x, beta[None, :].T)[:, 0]
                parts[name] = value * self.y_scale if additive else value
        return Forecast(ds=ds_ns.view("datetime64[ns]"), yhat=yhat, components=parts, **bounds)

    def _intervals(
        self,
        t: np.ndarray,
        expected: np.ndarray,
        x: np.ndarray,
        *,
        n_samples: int,
        rng: RandomSource,
        trend_bounds: bool,
    ) -> dict[str, np.ndarray]:
        """Prophet's vectorised simulation (sample_model_vectorized), all samples at once.

        Samples are laid out (dates, samples), as Prophet stacks them before taking percentiles.
        """
        # Prophet's expressions, evaluated in place in the same order (same values, fewer big temporaries).
        trend_samples = self._trend_shift_paths(t, n_samples, rng)
        trend_samples += expected[:, None]
        trend_samples *= self.y_scale
        trend_samples += self.floor
        xb_additive = np.matmul(x, self._beta_additive) * self.y_scale
        xb_multiplicative = np.matmul(x, self._beta_multiplicative)
        if isinstance(rng, np.random.RandomState):
            noise = np.ascontiguousarray(rng.normal(0, self.sigma_obs, (n_samples, len(t))).T)
        else:
            noise = rng.normal(0, self.sigma_obs, (len(t), n_samples))
        noise *= self.y_scale
        if self._multiplicative:
            yhat_samples = trend_samples * (1 + xb_multiplicative[:, None])
        else:  # trend * (1 + 0) is the trend exactly; copied only when its own bounds are still to come
            yhat_samples = trend_samples.copy() if trend_bounds else trend_samples
        yhat_samples += xb_additive[:, None]
        yhat_samples += noise
        percentiles = (self._lower_p, self._upper_p)
        bounds = dict(
            zip(("yhat_lower", "yhat_upper"), percentile_rows(yhat_samples, percentiles), strict=True)
        )
        if trend_bounds:
            trend = percentile_rows(trend_samples, percentiles)
            bounds.update(zip(("trend_lower", "trend_upper"), trend, strict=True))
        return bounds

    def _trend_shift_paths(self, t: np.ndarray, n_samples: int, rng: RandomSource) -> np.ndarray:
        """Future slope changes integrated into level shifts, (len(t), n_samples); zero up to t = 1."""
        n_future = len(t) - int(np.searchsorted(t, 1.0, side="right"))  # t ascending: the dates after t = 1
        if n_future == 0 or self.growth == "flat":
            return np.zeros((len(t), n_samples))
        # np.mean's own arithmetic (a pairwise sum, then one division), without its wrapper's overhead.
        step = np.add.reduce(np.diff(t[-n_future:])) / (n_future - 1) if n_future > 1 else self.history_step_t
        if math.isnan(step):
            raise ValueError("one future date needs the history step, which this model was compiled without")
        likelihood = len(self.changepoints_t) * step
        if isinstance(rng, np.random.RandomState):
            # _make_trend_shift_matrix's draws in its order and shape: reproduces np.random-seeded Prophet.
            changes = rng.uniform(size=(n_samples, n_future)) < likelihood
            slope = rng.laplace(0, self._mean_abs_delta, size=changes.shape)
            slope *= changes  # in place: the same products as `slope * changes`
            slope = np.ascontiguousarray(slope.T)
        else:
            # Same distribution; only the slope changes that happen need a Laplace size.
            changes = rng.uniform(size=(n_future, n_samples)) < likelihood
            slope = np.zeros((n_future, n_samples))
            slope[changes] = rng.laplace(0, self._mean_abs_delta, size=int(np.count_nonzero(changes)))
        # A change at a step takes effect half-way through it, as in Prophet: (previous + this) / 2.
        averaged = slope.copy()
        averaged[1:] += slope[:-1]
        averaged /= 2
        paths = _cumsum_rows(_cumsum_rows(averaged))
        paths *= step
        if n_future < len(t):
            paths = np.concatenate([np.zeros((len(t) - n_future, n_samples)), paths], axis=0)
        return paths

    # ---- serialisation -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form; floats survive json round trips exactly (shortest repr)."""
        drivers = {}
        if self.holidays is not None or self.regressors:
            drivers = {
                "holidays": None
                if self.holidays is None
                else {
                    "country": self.holidays.country,
                    "names": list(self.holidays.names),
                    "training_order": list(self.holidays.training_order),
                    "mode": self.holidays.mode,
                },
                "regressors": [
                    {"name": r.name, "mu": r.mu, "std": r.std, "mode": r.mode} for r in self.regressors
                ],
            }
        return {
            "format": FORMAT,
            "format_version": DRIVERS_FORMAT_VERSION if drivers else FORMAT_VERSION,
            **drivers,
            "growth": self.growth,
            "y_scale": self.y_scale,
            "floor": self.floor,
            "start_ns": self.start_ns,
            "t_scale_ns": self.t_scale_ns,
            "k": self.k,
            "m": self.m,
            "deltas": self.deltas.tolist(),
            "changepoints_t": self.changepoints_t.tolist(),
            "seasonalities": [
                {
                    "name": s.name,
                    "period": s.period,
                    "fourier_order": s.fourier_order,
                    "mode": s.mode,
                    **({"condition": s.condition} if s.condition is not None else {}),
                }
                for s in self.seasonalities
            ],
            "beta": self.beta.tolist(),
            "sigma_obs": self.sigma_obs,
            "interval_width": self.interval_width,
            "uncertainty_samples": self.uncertainty_samples,
            "history_step_t": self.history_step_t,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompiledModel:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document")
        if data.get("format_version") not in READABLE_VERSIONS:
            raise ValueError(
                f"{FORMAT} version {data.get('format_version')!r}; this code reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}"
            )
        try:
            seasonalities = tuple(
                Seasonality(
                    name=str(s["name"]),
                    period=float(s["period"]),
                    fourier_order=int(s["fourier_order"]),
                    mode=_mode(s["mode"]),
                    condition=_condition(s.get("condition")),
                )
                for s in data["seasonalities"]
            )
            return cls(
                growth=data["growth"],
                y_scale=data["y_scale"],
                floor=data["floor"],
                start_ns=data["start_ns"],
                t_scale_ns=data["t_scale_ns"],
                k=data["k"],
                m=data["m"],
                deltas=np.array(data["deltas"], dtype=np.float64),
                changepoints_t=np.array(data["changepoints_t"], dtype=np.float64),
                seasonalities=seasonalities,
                beta=np.array(data["beta"], dtype=np.float64),
                sigma_obs=data["sigma_obs"],
                interval_width=data["interval_width"],
                uncertainty_samples=data["uncertainty_samples"],
                history_step_t=data["history_step_t"],
                holidays=_holiday_terms(data.get("holidays")),
                regressors=tuple(
                    RegressorTerm(str(r["name"]), float(r["mu"]), float(r["std"]), _mode(r["mode"]))
                    for r in data.get("regressors") or ()
                ),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"incomplete {FORMAT} document: {exc!r}") from None

    def __repr__(self) -> str:
        seasons = ", ".join(f"{s.name}:{s.fourier_order}/{s.mode[0]}" for s in self.seasonalities) or "none"
        return (
            f"CompiledModel(growth={self.growth}, changepoints={len(self.changepoints_t)}, "
            f"seasonalities=[{seasons}], samples={self.uncertainty_samples})"
        )


def percentile_rows(samples: np.ndarray, percentiles: tuple[float, ...]) -> list[np.ndarray]:
    """np.percentile(samples, p, axis=1) (linear method) for each p, from one sort of each row.

    Same order statistics, index, weight and interpolation arithmetic as numpy's `_quantile`/`_lerp`, so
    the values are identical. A full (SIMD) sort beats np.partition with several kth values ~5x on
    (366, 1000) samples and ties on (7, 1000).
    """
    ordered = np.sort(samples, axis=1)
    results = []
    for below, above, gamma in _percentile_plan(samples.shape[1], tuple(percentiles)):
        low, high = ordered[:, below], ordered[:, above]
        diff = high - low
        results.append(high - diff * (1 - gamma) if gamma >= 0.5 else low + diff * gamma)
    return results


@functools.lru_cache(maxsize=64)
def _percentile_plan(count: int, percentiles: tuple[float, ...]) -> tuple[tuple[int, int, float], ...]:
    """(order statistic below, above, interpolation weight) per percentile, as numpy's linear method."""
    plan = []
    for p in percentiles:
        virtual = (count - 1) * np.true_divide(p, 100)
        below = math.floor(virtual)
        if virtual >= count - 1:
            below = above = count - 1
        else:
            above = below + 1
        plan.append((below, above, virtual - below))
    return tuple(plan)


def _condition(value: Any) -> str | None:
    if value is not None and value not in CONDITIONS:
        raise ValueError(f"seasonality condition {value!r} is not one of {', '.join(CONDITIONS)}")
    return value


def _holiday_terms(data: dict[str, Any] | None) -> HolidayTerms | None:
    if data is None:
        return None
    return HolidayTerms(
        country=str(data["country"]),
        names=tuple(str(name) for name in data["names"]),
        training_order=tuple(str(name) for name in data["training_order"]),
        mode=_mode(data["mode"]),
    )


def _mode(value: Any) -> str:
    if value not in MODES:
        raise ValueError(f"seasonality mode {value!r}")
    return str(value)


def _as_ns(ds: Any) -> np.ndarray:
    """datetime64 values of any unit as int64 nanoseconds."""
    array = np.asarray(ds)
    if array.dtype.kind != "M":
        array = array.astype("datetime64[ns]")
    return np.ascontiguousarray(array.astype("datetime64[ns]")).view(np.int64).reshape(-1)


def _days_since_epoch(ds_ns: np.ndarray) -> np.ndarray:
    """pandas' `Series.dt.total_seconds()` on ns values, / 86400: whole seconds plus the residual.

    pandas splits seconds and residual to keep sub-second precision, and nudges a value with a sub-second
    residual off an integer boundary; mirrored here so the features match bit for bit.
    """
    whole, residual = np.divmod(ds_ns, NS_PER_SECOND)
    seconds = whole + residual / NS_PER_SECOND
    if residual.any():
        whole_f = whole.astype(np.float64)
        fixable = (residual != 0) & (np.abs(whole) < 2**52)
        on_floor = fixable & (seconds == whole_f)
        on_ceil = fixable & (seconds == whole_f + 1.0)
        seconds = np.where(on_floor, np.nextafter(seconds, seconds + 1.0), seconds)
        seconds = np.where(on_ceil, np.nextafter(seconds, seconds - 1.0), seconds)
    return seconds / (24 * 60 * 60)


def _cumsum_rows(values: np.ndarray) -> np.ndarray:
    """np.cumsum(values, axis=0), in place, one row at a time: the same additions in the same order,
    but a short, wide matrix is summed ~10x faster than numpy's strided axis-0 accumulate."""
    for row in range(1, len(values)):
        values[row] += values[row - 1]
    return values


# Unseeded calls share one generator: seeding a fresh one from OS entropy costs more than the sampling.
_SHARED_RNG = np.random.default_rng()


def _rng(seed: int | RandomSource | None) -> RandomSource:
    if seed is None:
        return _SHARED_RNG
    if isinstance(seed, np.random.Generator | np.random.RandomState):
        return seed
    return np.random.default_rng(seed)


# ---- building one from Prophet ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Facts:
    """What compiling needs from a fitted model, read from a Prophet object or from its model.json."""

    prophet_version: str
    growth: str
    logistic_floor: bool
    mcmc_samples: int
    custom_holidays: bool  # a user's holidays frame (not a country calendar)
    country_holidays: str | None
    holiday_names: list[str] | None  # train_holiday_names
    holidays_mode: str
    extra_regressors: dict[str, dict[str, Any]]  # name -> Prophet's props, in training order
    params: dict[str, np.ndarray]
    seasonalities: dict[str, dict[str, Any]]
    component_columns: dict[str, np.ndarray] | None  # train_component_cols, column -> 0/1 per feature
    scaling: str
    y_min: float
    y_scale: float
    start_ns: int
    t_scale_ns: int
    changepoints_t: np.ndarray
    interval_width: float
    uncertainty_samples: int
    history_t: np.ndarray | None  # None: not read


def compile_model(model: Prophet) -> CompiledModel:
    """The compiled form of a fitted Prophet model, or NotCompilable(reason) naming what it lacks."""
    if getattr(model, "history", None) is None or getattr(model, "params", None) is None:
        raise NotCompilable("model is not fitted")
    from prophet import __version__ as prophet_version

    cols = model.train_component_cols
    holiday_names = model.train_holiday_names
    return _compile(
        _Facts(
            prophet_version=prophet_version,
            growth=model.growth,
            logistic_floor=bool(getattr(model, "logistic_floor", False)),
            mcmc_samples=int(getattr(model, "mcmc_samples", 0) or 0),
            custom_holidays=model.holidays is not None,
            country_holidays=getattr(model, "country_holidays", None),
            holiday_names=None if holiday_names is None else list(holiday_names),
            holidays_mode=getattr(model, "holidays_mode", None) or model.seasonality_mode,
            extra_regressors=dict(model.extra_regressors),
            params={name: np.asarray(value) for name, value in model.params.items()},
            seasonalities=dict(model.seasonalities),
            component_columns=None if cols is None else {c: cols[c].to_numpy() for c in cols.columns},
            scaling=getattr(model, "scaling", "absmax"),
            y_min=float(getattr(model, "y_min", 0.0) or 0.0),
            y_scale=float(model.y_scale),
            start_ns=int(np.datetime64(model.start, "ns").astype(np.int64)),
            t_scale_ns=int(np.timedelta64(model.t_scale, "ns").astype(np.int64)),
            changepoints_t=np.asarray(model.changepoints_t, dtype=np.float64),
            interval_width=float(model.interval_width),
            uncertainty_samples=int(model.uncertainty_samples or 0),
            history_t=np.asarray(model.history["t"], dtype=np.float64),
        )
    )


def compile_state(state: FittedState) -> CompiledModel:
    """Compiled from the fit engine's state, exactly as from the model.json that state is written as.

    `start` and `t_scale` go through the same float seconds as the JSON, so this predicts what a server
    loading the archive predicts.
    """
    from fleetcast.model.fit.prophet_json import PROPHET_VERSION, written_floats

    return _compile(
        _Facts(
            prophet_version=PROPHET_VERSION,
            growth=state.growth,
            logistic_floor=bool(state.logistic_floor),
            mcmc_samples=int(state.mcmc_samples or 0),
            custom_holidays=state.holidays is not None,
            country_holidays=state.country_holidays,
            holiday_names=state.train_holiday_names,
            holidays_mode=state.holidays_mode,
            extra_regressors=dict(state.extra_regressors),
            params={name: np.asarray(value) for name, value in state.params.items()},
            seasonalities=dict(state.seasonalities),
            component_columns={
                name: state.component_cols[:, j] for j, name in enumerate(state.component_names)
            },
            scaling=state.scaling,
            y_min=float(state.y_min or 0.0),
            y_scale=float(state.y_scale),
            start_ns=_fromtimestamp_ns(float(state.start)),
            t_scale_ns=int(float(state.t_scale) * 1_000_000_000),
            changepoints_t=np.asarray(state.changepoints_t, dtype=np.float64),
            interval_width=float(state.interval_width),
            uncertainty_samples=int(state.uncertainty_samples or 0),
            # The history's t as model.json rounds it (10 significant digits), as a server reads it.
            history_t=written_floats(state.history["t"]),
        )
    )


def compile_model_json(model_json: str, *, history_step: bool = True) -> CompiledModel:
    """Compile straight from prophet.serialize's model.json, without pandas or Prophet.

    Reads the same fields model_from_json would, converting `start` and `t_scale` exactly as it does
    (datetime.fromtimestamp to the microsecond; Timedelta(seconds=x) = int(x * 1e9) ns). Raises
    NotCompilable for what the compiled form does not cover and ValueError for a document that is not a
    fitted Prophet model. `history_step=False` skips parsing the training history (half the cost), whose
    only use is the interval of a forecast with a single future date: such a model refuses one.
    """
    try:
        data = json.loads(model_json)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data["history"] is None:
            raise NotCompilable("model is not fitted")
        history = json.loads(data["history"])["data"] if history_step else None
        cols = data.get("train_component_cols")
        holiday_names = data.get("train_holiday_names")
        seasonality_names, seasonality_props = data["seasonalities"]
        regressor_names, regressor_props = data.get("extra_regressors", [[], {}])
        facts = _Facts(
            prophet_version=str(data.get("__prophet_version", "unknown")),
            growth=data["growth"],
            logistic_floor=bool(data.get("logistic_floor", False)),
            mcmc_samples=int(data.get("mcmc_samples") or 0),
            custom_holidays=data.get("holidays") is not None,
            country_holidays=data.get("country_holidays"),
            holiday_names=None if holiday_names is None else list(json.loads(holiday_names)["data"]),
            holidays_mode=data.get("holidays_mode") or data["seasonality_mode"],
            extra_regressors={name: regressor_props[name] for name in regressor_names},
            params={name: np.array(value) for name, value in data["params"].items()},
            seasonalities={name: seasonality_props[name] for name in seasonality_names},
            component_columns=None if cols is None else _table_columns(json.loads(cols)),
            scaling=data.get("scaling", "absmax"),
            y_min=float(data.get("y_min") or 0.0),
            y_scale=float(data["y_scale"]),
            start_ns=_fromtimestamp_ns(float(data["start"])),
            t_scale_ns=int(float(data["t_scale"]) * 1_000_000_000),
            changepoints_t=np.array(data["changepoints_t"], dtype=np.float64),
            interval_width=float(data["interval_width"]),
            uncertainty_samples=int(data["uncertainty_samples"] or 0),
            history_t=np.array([row["t"] for row in history], dtype=np.float64) if history_step else None,
        )
    except NotCompilable:
        raise
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"model.json is not a fitted Prophet model ({type(exc).__name__}: {exc})") from None
    return _compile(facts)


def _table_columns(table: dict[str, Any]) -> dict[str, np.ndarray]:
    """A pandas orient='table' document's data columns (index fields excluded)."""
    index = set(table.get("schema", {}).get("primaryKey") or [])
    names = [f["name"] for f in table["schema"]["fields"] if f["name"] not in index and f["name"] != "index"]
    return {name: np.array([row[name] for row in table["data"]]) for name in names}


def _fromtimestamp_ns(seconds: float) -> int:
    stamp = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC).replace(tzinfo=None)
    return ((stamp - datetime.datetime(1970, 1, 1)) // datetime.timedelta(microseconds=1)) * 1000


def _compile(facts: _Facts) -> CompiledModel:
    _refuse_unsupported(facts)
    seasonalities = _seasonalities(facts)
    holidays = _holidays(facts)
    regressors = _regressors(facts)
    _check_feature_layout(facts, seasonalities, holidays, regressors)
    params = facts.params
    if facts.scaling == "absmax":
        floor = 0.0
    elif facts.scaling == "minmax":
        floor = facts.y_min
    else:
        raise NotCompilable(f"scaling={facts.scaling!r}")
    history_t = facts.history_t
    # Prophet uses the mean history step when only one future date is asked for.
    if history_t is None:
        history_step_t = math.nan  # not read (compile_model_json(history_step=False))
    else:
        history_step_t = float(np.diff(history_t).mean()) if len(history_t) > 1 else 0.0
    return CompiledModel(
        growth=facts.growth,
        y_scale=facts.y_scale,
        floor=floor,
        start_ns=facts.start_ns,
        t_scale_ns=facts.t_scale_ns,
        k=float(np.nanmean(params["k"])),
        m=float(np.nanmean(params["m"])),
        deltas=np.nanmean(params["delta"], axis=0),
        changepoints_t=facts.changepoints_t,
        seasonalities=tuple(seasonalities),
        beta=np.asarray(params["beta"], dtype=np.float64)[0],
        sigma_obs=float(np.asarray(params["sigma_obs"]).reshape(-1)[0]),
        interval_width=facts.interval_width,
        uncertainty_samples=facts.uncertainty_samples,
        history_step_t=history_step_t,
        holidays=holidays,
        regressors=regressors,
    )


def _refuse_unsupported(facts: _Facts) -> None:
    if not facts.prophet_version.startswith(VERIFIED_PROPHET):
        raise NotCompilable(
            f"a model from Prophet {facts.prophet_version} (the compiled arithmetic is verified against "
            f"Prophet {VERIFIED_PROPHET}x)"
        )
    if facts.growth not in SUPPORTED_GROWTH:
        raise NotCompilable(f"growth={facts.growth!r} (compiled predictor covers linear and flat)")
    if facts.logistic_floor:
        raise NotCompilable("logistic floor")
    if facts.mcmc_samples:
        raise NotCompilable(f"MCMC fit (mcmc_samples={facts.mcmc_samples})")
    if facts.custom_holidays:
        raise NotCompilable("a custom holidays frame (country holidays are covered)")
    for name in ("k", "m", "delta", "beta", "sigma_obs"):
        if name not in facts.params:
            raise NotCompilable(f"fitted parameter {name!r} missing")
        value = facts.params[name]
        if value.ndim == 0 or value.shape[0] != 1:
            raise NotCompilable(f"{value.shape[0] if value.ndim else 0} draws of {name} (not a MAP fit)")


def _seasonalities(facts: _Facts) -> list[Seasonality]:
    seasonalities = []
    for name, props in facts.seasonalities.items():
        condition = props.get("condition_name")
        if condition is not None and condition not in CONDITIONS:
            raise NotCompilable(f"seasonality {name!r} conditioned on the input column {condition!r}")
        if props["mode"] not in MODES:
            raise NotCompilable(f"seasonality {name!r} has mode {props['mode']!r}")
        order = int(props["fourier_order"])
        if order < 1:
            raise NotCompilable(f"seasonality {name!r} has Fourier order {order}")
        seasonalities.append(Seasonality(name, float(props["period"]), order, props["mode"], condition))
    return seasonalities


def _holidays(facts: _Facts) -> HolidayTerms | None:
    if not facts.holiday_names:
        if facts.holiday_names is not None:
            raise NotCompilable("an empty list of training holiday names")
        return None
    if facts.country_holidays is None:
        raise NotCompilable("holiday names without a country calendar")
    if facts.holidays_mode not in MODES:
        raise NotCompilable(f"holidays_mode={facts.holidays_mode!r}")
    try:
        country_holidays.validate_country(facts.country_holidays)
    except country_holidays.UnknownCountryError as exc:
        raise NotCompilable(str(exc)) from None
    return HolidayTerms(
        country=facts.country_holidays,
        names=tuple(country_holidays.column_names(facts.holiday_names)),
        training_order=tuple(facts.holiday_names),
        mode=facts.holidays_mode,
    )


def _regressors(facts: _Facts) -> tuple[RegressorTerm, ...]:
    terms = []
    for name, props in facts.extra_regressors.items():
        if props.get("predictor_spec") is not None:
            raise NotCompilable(f"regressor {name!r} is forecast by its own model (regressor_predictor)")
        if props.get("mode") not in MODES:
            raise NotCompilable(f"regressor {name!r} has mode {props.get('mode')!r}")
        terms.append(RegressorTerm(str(name), float(props["mu"]), float(props["std"]), props["mode"]))
    return tuple(terms)


def _check_feature_layout(
    facts: _Facts,
    seasonalities: list[Seasonality],
    holidays: HolidayTerms | None,
    regressors: tuple[RegressorTerm, ...],
) -> None:
    """The training feature columns must be exactly our seasonalities' Fourier terms, then the holiday
    columns, then the regressors, in order."""
    fourier = sum(2 * s.fourier_order for s in seasonalities)
    holiday_width = 0 if holidays is None else len(holidays.names)
    width = fourier + holiday_width + len(regressors)
    beta = facts.params["beta"]
    beta_width = beta.shape[1] if beta.ndim == 2 else -1
    if beta_width != max(width, 1):
        raise NotCompilable(f"{beta_width} coefficients but the model's terms explain {width}")
    cols = facts.component_columns
    if cols is None:
        return
    for position, name in enumerate(() if holidays is None else holidays.names):
        if name in cols and not cols[name][fourier + position]:
            raise NotCompilable(f"holiday {name!r} is not where its feature should be")
    for position, regressor in enumerate(regressors):
        if regressor.name in cols and not cols[regressor.name][fourier + holiday_width + position]:
            raise NotCompilable(f"regressor {regressor.name!r} is not where its feature should be")
    known = {s.name for s in seasonalities} | {"additive_terms", "multiplicative_terms"}
    known |= set(() if holidays is None else holidays.names) | {"holidays"}
    known |= {r.name for r in regressors} | {f"extra_regressors_{mode}" for mode in MODES}
    unknown = sorted(name for name, used in cols.items() if name not in known and np.any(used))
    if unknown:
        raise NotCompilable(f"components the compiled predictor does not model: {unknown}")
    column = 0
    for season in seasonalities:
        span = slice(column, column + 2 * season.fourier_order)
        if season.name in cols and not np.all(cols[season.name][span]):
            raise NotCompilable(f"seasonality {season.name!r} is not where its features should be")
        column = span.stop


# ---- the future grid -------------------------------------------------------------------------------


# The common aliases, spelled as pandas 3 spells them, understood without importing pandas.
_FIXED_ALIAS = re.compile(r"(\d*)(D|h|min|s|ms|us|ns)")
_STEP_NS = {"D": NS_PER_DAY, "h": 3600 * NS_PER_SECOND, "min": 60 * NS_PER_SECOND, "s": NS_PER_SECOND}
_STEP_NS.update({"ms": 1_000_000, "us": 1_000, "ns": 1})
_WEEK_ALIAS = re.compile(r"W(?:-(MON|TUE|WED|THU|FRI|SAT|SUN))?")
_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


@functools.lru_cache(maxsize=64)
def _grid_rule(freq: str) -> tuple[str, int, int]:
    """('fixed', step_ns, 0), ('weekly', 7 days, weekday) or ('calendar', 0, 0), cached per alias."""
    fixed = _FIXED_ALIAS.fullmatch(freq)
    if fixed:
        step = int(fixed.group(1) or 1) * _STEP_NS[fixed.group(2)]
        if step <= 0:
            raise ValueError(f"frequency {freq!r} does not move forward")
        return ("fixed", step, 0)
    week = _WEEK_ALIAS.fullmatch(freq)
    if week:
        return ("weekly", 7 * NS_PER_DAY, _WEEKDAYS.index(week.group(1) or "SUN"))
    return _pandas_grid_rule(freq)


def _pandas_grid_rule(freq: str) -> tuple[str, int, int]:
    from pandas.tseries.frequencies import to_offset
    from pandas.tseries.offsets import Day, Tick, Week

    try:
        offset = to_offset(freq)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"unknown frequency {freq!r}: {exc}") from None
    if isinstance(offset, Tick):
        step = int(offset.nanos)
    elif isinstance(offset, Day):
        step = int(offset.n) * NS_PER_DAY
    elif isinstance(offset, Week) and offset.n == 1:
        if offset.weekday is None:
            return ("fixed", 7 * NS_PER_DAY, 0)
        return ("weekly", 7 * NS_PER_DAY, int(offset.weekday))
    else:
        return ("calendar", 0, 0)
    if step <= 0:
        raise ValueError(f"frequency {freq!r} does not move forward")
    return ("fixed", step, 0)


def future_dates(last_observation: Any, periods: int, freq: str) -> np.ndarray:
    """`periods` datetime64[ns] dates strictly after the last observation, on the `freq` grid.

    Same dates as fleetcast.model.dates.future_frame (pandas date_range from the last
    observation, keeping the dates after it): numpy arithmetic for fixed-width steps and weekly anchors,
    pandas only for calendar frequencies (MS, ME, B, ...).
    """
    if periods < 1:
        raise ValueError("periods must be at least 1")
    last = int(np.datetime64(last_observation, "ns").astype(np.int64))
    kind, step, weekday = _grid_rule(freq)
    steps = np.arange(periods, dtype=np.int64)
    if kind != "calendar":
        first = last + step
        if kind == "weekly":
            first = last + ((weekday - (last // NS_PER_DAY + EPOCH_WEEKDAY)) % 7 or 7) * NS_PER_DAY
        # int64 nanoseconds would wrap silently; pandas' range ends in April 2262 too.
        if first + (periods - 1) * step > LAST_NS:
            raise OverflowError(f"{periods} steps of {freq!r} run past {np.datetime64(LAST_NS, 'ns')}")
        return (steps * step + first).view("datetime64[ns]")
    import pandas as pd

    try:
        dates = pd.date_range(start=pd.Timestamp(last, unit="ns"), periods=periods + 1, freq=freq)
    except (pd.errors.OutOfBoundsDatetime, OverflowError):
        raise OverflowError(f"{periods} steps of {freq!r} run past {np.datetime64(LAST_NS, 'ns')}") from None
    dates = dates[dates > pd.Timestamp(last, unit="ns")][:periods]
    return dates.to_numpy(dtype="datetime64[ns]")


def iso_strings(ds: np.ndarray) -> list[str]:
    """`Timestamp.isoformat()` of each date ('2023-01-01T00:00:00'), without pandas for whole seconds."""
    ds = np.asarray(ds, dtype="datetime64[ns]")
    if not np.any(ds.view(np.int64) % NS_PER_SECOND):
        return np.datetime_as_string(ds, unit="s").tolist()
    import pandas as pd

    return [pd.Timestamp(value).isoformat() for value in ds]
