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

`compile_model` refuses, with `NotCompilable(reason)`, anything it does not reproduce exactly (logistic
growth, holidays, extra regressors, conditional seasonalities, MCMC fits, ...); callers then use Prophet's
own `predict` and say so in the log. Dates are numpy `datetime64` arrays: no pandas on the predict path.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from prophet import Prophet

FORMAT = "fleetcast-compiled-prophet"
FORMAT_VERSION = 1
COMPILED_FILE = "compiled.json"

NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND
# 1970-01-01 was a Thursday; numpy weekday numbering follows pandas (Monday = 0).
EPOCH_WEEKDAY = 3
SUPPORTED_GROWTH = ("linear", "flat")
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


@dataclass(frozen=True)
class Forecast:
    """Predictions for sorted dates; `yhat_lower`/`yhat_upper`/`trend_*` are None without intervals."""

    ds: np.ndarray  # datetime64[ns], ascending
    yhat: np.ndarray
    yhat_lower: np.ndarray | None = None
    yhat_upper: np.ndarray | None = None
    trend_lower: np.ndarray | None = None
    trend_upper: np.ndarray | None = None
    components: dict[str, np.ndarray] | None = (
        None  # trend, additive_terms, multiplicative_terms, each seasonality
    )


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
        self._has_multiplicative = bool(masks["multiplicative"].any())
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
        """
        ds_ns = _as_ns(ds)
        if len(ds_ns) == 0:
            raise ValueError("no dates to forecast")
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
        shifts = self._trend_shift_paths(t, n_samples, rng)
        trend_samples = (expected[:, None] + shifts) * self.y_scale + self.floor
        xb_additive = np.matmul(x, self._beta_additive) * self.y_scale
        xb_multiplicative = np.matmul(x, self._beta_multiplicative)
        if isinstance(rng, np.random.RandomState):
            noise = rng.normal(0, self.sigma_obs, (n_samples, len(t))).T * self.y_scale
        else:
            noise = rng.normal(0, self.sigma_obs, (len(t), n_samples)) * self.y_scale
        yhat_samples = trend_samples * (1 + xb_multiplicative[:, None]) + xb_additive[:, None] + noise
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
            changes = (rng.uniform(size=(n_samples, n_future)) < likelihood).T
            slope = rng.laplace(0, self._mean_abs_delta, size=(n_samples, n_future)).T * changes
        else:
            # Same distribution; only the slope changes that happen need a Laplace size.
            changes = rng.uniform(size=(n_future, n_samples)) < likelihood
            slope = np.zeros((n_future, n_samples))
            slope[changes] = rng.laplace(0, self._mean_abs_delta, size=int(np.count_nonzero(changes)))
        # A change at a step takes effect half-way through it, as in Prophet.
        previous = np.vstack([np.zeros((1, n_samples)), slope])[:-1]
        slope = (previous + slope) / 2
        paths = slope.cumsum(axis=0).cumsum(axis=0)
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
                {"name": s.name, "period": s.period, "fourier_order": s.fourier_order, "mode": s.mode}
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
    """np.percentile(samples, p, axis=1) (linear method) for each p, with one partition for all of them.

    Same index, weight and interpolation arithmetic as numpy's `_quantile`/`_lerp`, so the values are
    identical; only the repeated set-up work is skipped.
    """
    count = samples.shape[1]
    results = []
    kth: list[int] = []
    plan = []
    for p in percentiles:
        virtual = (count - 1) * np.true_divide(p, 100)
        below = math.floor(virtual)
        if virtual >= count - 1:
            below = above = count - 1
        else:
            above = below + 1
        plan.append((below, above, virtual - below))
        kth.extend((below, above))
    ordered = np.partition(samples, sorted(set(kth)), axis=1)
    for below, above, gamma in plan:
        low, high = ordered[:, below], ordered[:, above]
        diff = high - low
        results.append(high - diff * (1 - gamma) if gamma >= 0.5 else low + diff * gamma)
    return results


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


def _rng(seed: int | RandomSource | None) -> RandomSource:
    if isinstance(seed, np.random.Generator | np.random.RandomState):
        return seed
    return np.random.default_rng(seed)


# ---- building one from Prophet ---------------------------------------------------------------------


def compile_model(model: Prophet) -> CompiledModel:
    """The compiled form of a fitted Prophet model, or NotCompilable(reason) naming what it lacks."""
    _refuse_unsupported(model)
    params = model.params
    seasonalities = _seasonalities(model)
    _check_feature_layout(model, seasonalities)

    scaling = getattr(model, "scaling", "absmax")
    if scaling == "absmax":
        floor = 0.0
    elif scaling == "minmax":
        floor = float(model.y_min)
    else:
        raise NotCompilable(f"scaling={scaling!r}")

    history_t = np.asarray(model.history["t"], dtype=np.float64)
    # Prophet uses the mean history step when only one future date is asked for.
    history_step_t = float(np.diff(history_t).mean()) if len(history_t) > 1 else 0.0
    return CompiledModel(
        growth=model.growth,
        y_scale=float(model.y_scale),
        floor=floor,
        start_ns=_timestamp_ns(model.start),
        t_scale_ns=_timedelta_ns(model.t_scale),
        k=float(np.nanmean(params["k"])),
        m=float(np.nanmean(params["m"])),
        deltas=np.nanmean(params["delta"], axis=0),
        changepoints_t=np.asarray(model.changepoints_t, dtype=np.float64),
        seasonalities=tuple(seasonalities),
        beta=np.asarray(params["beta"], dtype=np.float64)[0],
        sigma_obs=float(np.asarray(params["sigma_obs"]).reshape(-1)[0]),
        interval_width=float(model.interval_width),
        uncertainty_samples=int(model.uncertainty_samples or 0),
        history_step_t=history_step_t,
    )


def _refuse_unsupported(model: Prophet) -> None:
    if getattr(model, "history", None) is None or getattr(model, "params", None) is None:
        raise NotCompilable("model is not fitted")
    if model.growth not in SUPPORTED_GROWTH:
        raise NotCompilable(f"growth={model.growth!r} (compiled predictor covers linear and flat)")
    if getattr(model, "logistic_floor", False):
        raise NotCompilable("logistic floor")
    if getattr(model, "mcmc_samples", 0):
        raise NotCompilable(f"MCMC fit (mcmc_samples={model.mcmc_samples})")
    has_holiday_names = model.train_holiday_names is not None and len(model.train_holiday_names) > 0
    if (
        model.holidays is not None
        or getattr(model, "country_holidays", None) is not None
        or has_holiday_names
    ):
        raise NotCompilable("holidays")
    if model.extra_regressors:
        raise NotCompilable(f"extra regressors {sorted(model.extra_regressors)}")
    for name in ("k", "m", "delta", "beta", "sigma_obs"):
        if name not in model.params:
            raise NotCompilable(f"fitted parameter {name!r} missing")
        draws = np.asarray(model.params[name]).shape[0]
        if draws != 1:
            raise NotCompilable(f"{draws} posterior draws of {name} (not a MAP fit)")


def _seasonalities(model: Prophet) -> list[Seasonality]:
    seasonalities = []
    for name, props in model.seasonalities.items():
        if props.get("condition_name") is not None:
            raise NotCompilable(f"conditional seasonality {name!r} (condition {props['condition_name']!r})")
        if props["mode"] not in MODES:
            raise NotCompilable(f"seasonality {name!r} has mode {props['mode']!r}")
        order = int(props["fourier_order"])
        if order < 1:
            raise NotCompilable(f"seasonality {name!r} has Fourier order {order}")
        seasonalities.append(Seasonality(name, float(props["period"]), order, props["mode"]))
    return seasonalities


def _check_feature_layout(model: Prophet, seasonalities: list[Seasonality]) -> None:
    """The training feature columns must be exactly our seasonalities' Fourier terms, in order."""
    cols = model.train_component_cols
    width = sum(2 * s.fourier_order for s in seasonalities)
    beta_width = np.asarray(model.params["beta"]).shape[1]
    if beta_width != max(width, 1):
        raise NotCompilable(f"{beta_width} seasonal coefficients but seasonalities explain {width}")
    if cols is None:
        return
    known = {s.name for s in seasonalities} | {"additive_terms", "multiplicative_terms"}
    unknown = [c for c in cols.columns if c not in known and cols[c].to_numpy().any()]
    if unknown:
        raise NotCompilable(f"components the compiled predictor does not model: {unknown}")
    column = 0
    for season in seasonalities:
        span = slice(column, column + 2 * season.fourier_order)
        if season.name in cols.columns and not cols[season.name].to_numpy()[span].all():
            raise NotCompilable(f"seasonality {season.name!r} is not where its features should be")
        column = span.stop


def _timestamp_ns(value: Any) -> int:
    return int(np.datetime64(value, "ns").astype(np.int64))


def _timedelta_ns(value: Any) -> int:
    return int(np.timedelta64(value, "ns").astype(np.int64))


# ---- the future grid -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _grid_rule(freq: str) -> tuple[str, int, int]:
    """('fixed', step_ns, 0), ('weekly', 7 days, weekday) or ('calendar', 0, 0), cached per alias."""
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

    Same dates as fleetcast.forecasting.prophet_model.future_frame (pandas date_range from the last
    observation, keeping the dates after it): numpy arithmetic for fixed-width steps and weekly anchors,
    pandas only for calendar frequencies (MS, ME, B, ...).
    """
    if periods < 1:
        raise ValueError("periods must be at least 1")
    last = int(np.datetime64(last_observation, "ns").astype(np.int64))
    kind, step, weekday = _grid_rule(freq)
    steps = np.arange(periods, dtype=np.int64)
    if kind == "fixed":
        return ((steps + 1) * step + last).view("datetime64[ns]")
    if kind == "weekly":
        days_ahead = (weekday - (last // NS_PER_DAY + EPOCH_WEEKDAY)) % 7 or 7
        return (steps * step + (last + days_ahead * NS_PER_DAY)).view("datetime64[ns]")
    import pandas as pd

    dates = pd.date_range(start=pd.Timestamp(last, unit="ns"), periods=periods + 1, freq=freq)
    dates = dates[dates > pd.Timestamp(last, unit="ns")][:periods]
    return dates.to_numpy(dtype="datetime64[ns]")
