"""A fitted Prophet model reduced to numbers, predicting with a few numpy operations.

Prophet's `predict` builds pandas frames, feature tables and 1,000 simulated futures to return a handful
of values; the arithmetic underneath is a piecewise-linear trend plus Fourier seasonalities. A
`CompiledModel` keeps only what that arithmetic needs (scaling constants, trend parameters, changepoints
in Prophet's scaled time, seasonality periods/orders/modes and their coefficients, the noise scale) and
reproduces, in the same floating-point order as Prophet 1.5:

- the point forecast and its components (`setup_dataframe`, `piecewise_linear`/`flat_trend`,
  `fourier_series`, `predict_seasonal_components`, `predict`);
- the uncertainty interval (`predict_uncertainty` with the vectorised sampler: future slope changes drawn
  per step with probability "changepoints per unit of scaled time x step", Laplace sizes with scale
  mean|delta|, observation noise sigma_obs; quantiles at `interval_width` over `uncertainty_samples`
  draws; multiplicative seasonality scales the sampled trend, the noise is added afterwards).

Conditional seasonalities are covered when fleetcast computes their condition from the timestamp
(model/conditions.py: weekday/weekend), zeroing their features where it is false as Prophet does.

`compile_model` refuses, with `NotCompilable(reason)`, anything it does not reproduce exactly (logistic
growth, holidays, extra regressors, seasonalities conditioned on an input column, MCMC fits, ...);
callers then use Prophet's own `predict` and say so in the log. Dates are numpy `datetime64` arrays: no
pandas on the predict path.
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

from fleetcast.model.conditions import CONDITIONS, condition_values

if TYPE_CHECKING:
    from prophet import Prophet

    from fleetcast.model.fit.prophet_json import FittedState

FORMAT = "fleetcast-compiled-prophet"
FORMAT_VERSION = 1
COMPILED_FILE = "compiled.json"

NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND
LAST_NS = int(np.iinfo(np.int64).max)
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
class Forecast:
    """Predictions for sorted dates; `yhat_lower`/`yhat_upper`/`trend_*` are None without intervals."""

    ds: np.ndarray  # datetime64[ns], ascending
    yhat: np.ndarray
    yhat_lower: np.ndarray | None = None
    yhat_upper: np.ndarray | None = None
    trend_lower: np.ndarray | None = None
    trend_upper: np.ndarray | None = None
    # trend, additive_terms, multiplicative_terms and each seasonality by name, when asked for
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
        if len(self.deltas) != len(self.changepoints_t):
            raise ValueError(f"{len(self.deltas)} deltas for {len(self.changepoints_t)} changepoints")
        width = sum(2 * s.fourier_order for s in self.seasonalities)
        # Prophet keeps a single all-zero placeholder feature when there is no seasonality at all.
        if len(self.beta) != max(width, 1):
            raise ValueError(f"{len(self.beta)} seasonal coefficients for {width} Fourier features")
        self._derive()

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

    def features(self, ds_ns: np.ndarray) -> np.ndarray:
        """The Fourier feature matrix, columns [sin 1, cos 1, sin 2, ...] per seasonality, as Prophet."""
        if not self.seasonalities:
            return np.zeros((len(ds_ns), 1), order="F")
        days = _days_since_epoch(ds_ns)
        angles = (np.pi * 2 * days)[:, None]
        phase = self._multipliers[None, :] * angles
        # Column-major like the DataFrame.values Prophet multiplies, so BLAS sums in the same order.
        out = np.empty((len(ds_ns), 2 * len(self._multipliers)), order="F")
        out[:, 0::2] = np.sin(phase)
        out[:, 1::2] = np.cos(phase)
        for season in self.seasonalities:
            if season.condition is not None:
                out[~condition_values(season.condition, ds_ns), self._columns[season.name]] = 0
        return out

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
    ) -> Forecast:
        """Forecast for `ds` (datetime64, any unit; sorted ascending as Prophet sorts them).

        `seed` makes intervals reproducible: an int or a numpy Generator; a legacy RandomState draws the
        exact stream Prophet draws from np.random. `samples` overrides the model's uncertainty_samples.
        `components` adds trend, additive/multiplicative terms, each seasonality, and trend bounds.
        """
        ds_ns = _as_ns(ds)
        if len(ds_ns) == 0:
            raise ValueError("no dates to forecast")
        if np.any(ds_ns == np.iinfo(np.int64).min):
            raise ValueError("dates include NaT")
        if len(ds_ns) > 1 and np.any(ds_ns[1:] < ds_ns[:-1]):
            ds_ns = np.sort(ds_ns, kind="mergesort")
        t = self.scaled_time(ds_ns)
        x = self.features(ds_ns)
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
        else:
            yhat_samples = trend_samples.copy()  # trend * (1 + 0) is the trend exactly
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
        future = t > 1
        n_future = int(future.sum())
        if n_future == 0 or self.growth == "flat":
            return np.zeros((len(t), n_samples))
        step = np.diff(t[future]).mean() if n_future > 1 else self.history_step_t
        likelihood = len(self.changepoints_t) * step
        if isinstance(rng, np.random.RandomState):
            # _make_trend_shift_matrix's draws in its order and shape: reproduces np.random-seeded Prophet.
            changes = rng.uniform(size=(n_samples, n_future)) < likelihood
            slope = np.ascontiguousarray(
                (rng.laplace(0, self._mean_abs_delta, size=changes.shape) * changes).T
            )
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
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
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
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{FORMAT} version {data.get('format_version')!r}; this code reads version {FORMAT_VERSION}"
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
    count = samples.shape[1]
    results = []
    plan = []
    for p in percentiles:
        virtual = (count - 1) * np.true_divide(p, 100)
        below = math.floor(virtual)
        if virtual >= count - 1:
            below = above = count - 1
        else:
            above = below + 1
        plan.append((below, above, virtual - below))
    ordered = np.sort(samples, axis=1)
    for below, above, gamma in plan:
        low, high = ordered[:, below], ordered[:, above]
        diff = high - low
        results.append(high - diff * (1 - gamma) if gamma >= 0.5 else low + diff * gamma)
    return results


def _condition(value: Any) -> str | None:
    if value is not None and value not in CONDITIONS:
        raise ValueError(f"seasonality condition {value!r} is not one of {', '.join(CONDITIONS)}")
    return value


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
    if np.any(residual != 0):
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
    holidays: bool
    extra_regressors: list[str]
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
    history_t: np.ndarray


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
            holidays=model.holidays is not None
            or getattr(model, "country_holidays", None) is not None
            or (holiday_names is not None and len(holiday_names) > 0),
            extra_regressors=sorted(model.extra_regressors),
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
    from fleetcast.model.fit.prophet_json import PROPHET_VERSION

    return _compile(
        _Facts(
            prophet_version=PROPHET_VERSION,
            growth=state.growth,
            logistic_floor=bool(state.logistic_floor),
            mcmc_samples=int(state.mcmc_samples or 0),
            holidays=state.holidays is not None
            or state.country_holidays is not None
            or state.train_holiday_names is not None,
            extra_regressors=sorted(state.extra_regressors),
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
            history_t=np.asarray(state.history["t"], dtype=np.float64),
        )
    )


def compile_model_json(model_json: str) -> CompiledModel:
    """Compile straight from prophet.serialize's model.json, without pandas or Prophet.

    Reads the same fields model_from_json would, converting `start` and `t_scale` exactly as it does
    (datetime.fromtimestamp to the microsecond; Timedelta(seconds=x) = int(x * 1e9) ns). Raises
    NotCompilable for what the compiled form does not cover and ValueError for a document that is not a
    fitted Prophet model.
    """
    try:
        data = json.loads(model_json)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data["history"] is None:
            raise NotCompilable("model is not fitted")
        history = json.loads(data["history"])["data"]
        cols = data.get("train_component_cols")
        holiday_names = data.get("train_holiday_names")
        seasonality_names, seasonality_props = data["seasonalities"]
        regressor_names = data.get("extra_regressors", [[], {}])[0]
        facts = _Facts(
            prophet_version=str(data.get("__prophet_version", "unknown")),
            growth=data["growth"],
            logistic_floor=bool(data.get("logistic_floor", False)),
            mcmc_samples=int(data.get("mcmc_samples") or 0),
            holidays=data.get("holidays") is not None
            or data.get("country_holidays") is not None
            or (holiday_names is not None and len(json.loads(holiday_names).get("data", [])) > 0),
            extra_regressors=sorted(regressor_names),
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
            history_t=np.array([row["t"] for row in history], dtype=np.float64),
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
    _check_feature_layout(facts, seasonalities)
    params = facts.params
    if facts.scaling == "absmax":
        floor = 0.0
    elif facts.scaling == "minmax":
        floor = facts.y_min
    else:
        raise NotCompilable(f"scaling={facts.scaling!r}")
    history_t = facts.history_t
    # Prophet uses the mean history step when only one future date is asked for.
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
    if facts.holidays:
        raise NotCompilable("holidays")
    if facts.extra_regressors:
        raise NotCompilable(f"extra regressors {facts.extra_regressors}")
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


def _check_feature_layout(facts: _Facts, seasonalities: list[Seasonality]) -> None:
    """The training feature columns must be exactly our seasonalities' Fourier terms, in order."""
    width = sum(2 * s.fourier_order for s in seasonalities)
    beta = facts.params["beta"]
    beta_width = beta.shape[1] if beta.ndim == 2 else -1
    if beta_width != max(width, 1):
        raise NotCompilable(f"{beta_width} seasonal coefficients but seasonalities explain {width}")
    cols = facts.component_columns
    if cols is None:
        return
    known = {s.name for s in seasonalities} | {"additive_terms", "multiplicative_terms"}
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
