"""Prophet's preprocessing in numpy: the Stan data of `Prophet.preprocess`, bit for bit, far faster.

Stock Prophet rebuilds every feature through pandas for every series. Almost all of that work depends only
on the timestamps and the settings: time scaling, changepoint placement, Fourier features, prior scales and
the component layout. That part is a `Grid`, computed once and cached, so customers that share their
timestamps (real meter fleets usually do) share it. What depends on the values (the y scale, the scaled y
and the initial trend) is a few vector operations per series.

Every formula follows prophet 1.5.0 with pandas 3 exactly (the fidelity tests compare the arrays to stock
`preprocess` with `==`): t is the int64-nanosecond offset over the int64-nanosecond span, both as doubles;
Fourier days are pandas' `total_seconds` (whole seconds plus the sub-second residual, nudged off integer
boundaries) over 86,400. Country holidays (`model/country_holidays.py`) depend on the timestamps too and
belong to the grid; regressor columns are the one feature that depends on a series' own values, standardised
as Prophet's `initialize_scales` does (pandas' mean and sample standard deviation, same sums). Only linear
and flat growth are prepared here; anything else raises `NotCovered`, and the engine fits it with Prophet.
Conditional seasonalities whose condition fleetcast computes from the timestamp (model/conditions.py) are
covered: they come first, as `add_seasonality` puts them before `fit` adds the built-in ones, and their
features are zero where the condition is false, as in `make_all_seasonality_features`.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fleetcast.model import country_holidays
from fleetcast.model.conditions import condition_values, conditional_seasonalities
from fleetcast.model.fit.problem import FLAT, LINEAR, FitParams, FitProblem
from fleetcast.model.fit.solver import NotCovered
from fleetcast.model.settings import ProphetSettings

NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND
# Prophet's built-in seasonalities: name, period in days, default Fourier order, and the auto rule's
# minimum span; the `ints` for weekly and daily periods are Prophet's own (they reach model.json as 7 and 1).
BUILT_IN = (("yearly", 365.25, 10), ("weekly", 7, 3), ("daily", 1, 4))
YEARLY_SPAN_NS, WEEKLY_SPAN_NS, DAILY_SPAN_NS = 730 * NS_PER_DAY, 14 * NS_PER_DAY, 2 * NS_PER_DAY
# Grids kept per process. Selection fits several prefixes of each history under several settings, so a
# fleet on one timestamp grid needs a few dozen; the byte bound keeps long sub-daily grids in check.
GRID_CACHE_SIZE = 64
GRID_CACHE_BYTES = 128 * 2**20
DUMMY_COLUMN = "zeros"  # Prophet's placeholder feature when there is no seasonality at all


@dataclass(frozen=True)
class Grid:
    """Everything Prophet derives from a history's timestamps and the settings, not from its values."""

    ds_ns: np.ndarray  # (T,) int64, sorted
    start_ns: int
    t_scale_ns: int
    t: np.ndarray  # (T,)
    seasonalities: OrderedDict[str, dict[str, Any]]  # as Prophet.seasonalities
    # Prophet's train_holiday_names (first appearance in the training years' calendar); None: no holidays
    holiday_names: tuple[str, ...] | None
    regressor_names: tuple[str, ...]  # the last columns of the problem's X, in the settings' order
    feature_names: tuple[str, ...]  # the columns of the problem's X, as Prophet names them
    X: np.ndarray  # (T, K - regressors): the columns the timestamps decide (Fourier terms, holidays)
    sigmas: np.ndarray  # (K,)
    s_a: np.ndarray  # (K,)
    s_m: np.ndarray  # (K,)
    component_modes: dict[str, list[str]]  # as Prophet.component_modes
    n_changepoints: int  # after Prophet's cut to the history size
    changepoint_rows: np.ndarray  # (S',) the history rows they sit on (the Series index Prophet keeps)
    changepoints_ns: np.ndarray  # (S',) int64; empty when Prophet places none
    changepoints_t: np.ndarray  # (S,) with Prophet's dummy [0] when there are no changepoints
    first_row: int  # Prophet's idxmin/idxmax of ds: the rows its linear initialisation goes through
    last_row: int
    trend_indicator: int
    tau: float
    regressor_modes: tuple[str, ...] = ()  # each regressor's mode (additive | multiplicative)
    # The solver's memoised design arrays for this grid (FitProblem.shared), filled on first use.
    solver_cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def problem_for(
        self, y_scaled: np.ndarray, init: FitParams, regressor_columns: np.ndarray | None = None
    ) -> FitProblem:
        shared = self.solver_cache
        features = self.X
        if regressor_columns is not None and regressor_columns.shape[1]:
            # The design now depends on this series' values: its own solver cache (the trend part reused).
            features = np.hstack([self.X, regressor_columns])
            shared = {key: value for key, value in self.solver_cache.items() if key == "trend_columns"}
        return FitProblem(
            t=self.t,
            y=y_scaled,
            cap=np.zeros(len(self.t)),
            X=features,
            sigmas=self.sigmas,
            s_a=self.s_a,
            s_m=self.s_m,
            t_change=self.changepoints_t,
            tau=self.tau,
            trend_indicator=self.trend_indicator,
            init=init,
            shared=shared,
        )

    def component_columns(self) -> OrderedDict[str, np.ndarray]:
        """`train_component_cols` as Prophet builds it: component -> 0/1 per feature column."""
        names = [name.split("_delim_")[0] for name in self.feature_names]
        groups: dict[str, set[int]] = {}
        for column, name in enumerate(names):
            groups.setdefault(name, set()).add(column)
        if self.holiday_names is not None:
            members = {c for name in self.holiday_names for c in groups.get(name, ())}
            if members:
                groups["holidays"] = members
        regressor_modes = dict(zip(self.regressor_names, self.regressor_modes, strict=True))
        for mode in ("additive", "multiplicative"):
            members = {c for comp in self.component_modes[mode] for c in groups.get(comp, ())}
            if members:
                groups[f"{mode}_terms"] = members
            members = {c for name, m in regressor_modes.items() if m == mode for c in groups[name]}
            if members:
                groups[f"extra_regressors_{mode}"] = members
        columns: OrderedDict[str, np.ndarray] = OrderedDict()
        width = len(self.feature_names)
        for name in sorted(groups):  # pandas.crosstab sorts the component names
            if name == DUMMY_COLUMN:
                continue
            indicator = np.zeros(width, dtype=np.int64)
            indicator[sorted(groups[name])] = 1
            columns[name] = indicator
        for name in ("additive_terms", "multiplicative_terms"):
            columns.setdefault(name, np.zeros(width, dtype=np.int64))
        return columns


@dataclass(frozen=True)
class Prepared:
    """One series prepared for the solver: its grid, its scale and Prophet's Stan data and initial values."""

    grid: Grid
    y: np.ndarray  # (T,) the values, unscaled
    y_scale: float
    problem: FitProblem
    # Each regressor's (mu, std) as Prophet stores them (0.0, 1.0 when not standardised) and its
    # standardised values (Prophet's history column).
    regressor_scales: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)
    regressor_values: OrderedDict[str, np.ndarray] = field(default_factory=OrderedDict)

    @property
    def constant(self) -> bool:
        """Prophet's constant-series rule applies (no optimisation; a vanishing noise scale)."""
        return bool(self.y.min() == self.y.max())


def prepare(
    ds_ns: np.ndarray,
    y: np.ndarray,
    settings: ProphetSettings,
    regressors: dict[str, np.ndarray] | None = None,
) -> Prepared:
    """Prophet's `preprocess` plus `calculate_initial_params` for sorted, finite rows (`ds` as int64 ns).

    `regressors` holds the raw values of every regressor the settings name, row for row.
    """
    ds_ns = np.ascontiguousarray(ds_ns, dtype=np.int64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    if len(ds_ns) < 2:
        raise ValueError("Dataframe has less than 2 non-NaN rows.")
    if len(ds_ns) != len(y):
        raise ValueError(f"{len(ds_ns)} timestamps but {len(y)} values")
    if not np.all(np.isfinite(y)):
        raise NotCovered("non-finite values of y")
    if np.any(np.diff(ds_ns) < 0):
        raise ValueError("timestamps must be sorted")
    scales, standardised = _standardise(settings, regressors or {}, len(y))
    grid = grid_for(ds_ns, settings)
    y_scale = float(np.max(np.abs(y)))
    if y_scale == 0:
        y_scale = 1.0
    y_scaled = (y - 0.0) / y_scale  # Prophet subtracts the absmax floor, 0.0, first
    if grid.trend_indicator == LINEAR:
        span = grid.t[grid.last_row] - grid.t[grid.first_row]
        k = (y_scaled[grid.last_row] - y_scaled[grid.first_row]) / span
        m = y_scaled[grid.first_row] - k * grid.t[grid.first_row]
    else:
        k, m = 0, float(np.mean(y_scaled))
    init = FitParams(
        k=k,
        m=float(m),
        delta=np.zeros_like(grid.changepoints_t),
        beta=np.zeros(len(grid.feature_names)),
        sigma_obs=1.0,
    )
    columns = np.column_stack(list(standardised.values())) if standardised else None
    return Prepared(
        grid=grid,
        y=y,
        y_scale=y_scale,
        problem=grid.problem_for(y_scaled, init, columns),
        regressor_scales=scales,
        regressor_values=standardised,
    )


def _standardise(
    settings: ProphetSettings, regressors: dict[str, np.ndarray], rows: int
) -> tuple[OrderedDict[str, tuple[float, float]], OrderedDict[str, np.ndarray]]:
    """Prophet's regressor scaling (standardize='auto'): (x - mean) / sample std, except for constant
    and 0/1 columns, with pandas' own sums (mean = sum / n; variance = sum((mean - x)^2) / (n - 1))."""
    scales: OrderedDict[str, tuple[float, float]] = OrderedDict()
    standardised: OrderedDict[str, np.ndarray] = OrderedDict()
    unknown = sorted(set(regressors) - set(settings.regressor_names))
    if unknown:
        raise ValueError(f"values for regressors the settings do not name: {unknown}")
    for name in settings.regressor_names:
        if name not in regressors:
            raise ValueError(f"Regressor {name!r} missing from dataframe")
        values = np.ascontiguousarray(regressors[name], dtype=np.float64)
        if values.shape != (rows,):
            raise ValueError(f"regressor {name!r} has {values.shape} values for {rows} rows")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"Found NaN in column {name!r}")
        distinct = np.unique(values)
        mu, std = 0.0, 1.0
        if len(distinct) >= 2 and not (len(distinct) == 2 and distinct[0] == 0 and distinct[1] == 1):
            mu = float(values.sum() / rows)
            std = float(np.sqrt(((mu - values) ** 2).sum() / (rows - 1)))
        scales[name] = (mu, std)
        standardised[name] = (values - mu) / std
    return scales, standardised


_grids: OrderedDict[tuple[Any, ...], Grid] = OrderedDict()


def grid_for(ds_ns: np.ndarray, settings: ProphetSettings) -> Grid:
    """The cached grid of these timestamps under these settings (least recently used out)."""
    key = (
        len(ds_ns),
        hashlib.blake2b(ds_ns.tobytes(), digest_size=16).digest(),
        settings.growth,
        settings.seasonality_mode,
        settings.yearly_seasonality,
        settings.weekly_seasonality,
        settings.daily_seasonality,
        settings.seasonality_prior_scale,
        settings.changepoint_prior_scale,
        settings.n_changepoints,
        settings.changepoint_range,
        settings.country_holidays,
        settings.holidays_prior_scale,
        settings.regressors,
        settings.regressor_prior_scale,
        settings.daily_by_day_type,
    )
    grid = _grids.get(key)
    if grid is None:
        grid = build_grid(ds_ns, settings)
        _grids[key] = grid
        while len(_grids) > 1 and (
            len(_grids) > GRID_CACHE_SIZE or sum(map(_grid_bytes, _grids.values())) > GRID_CACHE_BYTES
        ):
            _grids.popitem(last=False)
    else:
        _grids.move_to_end(key)
    return grid


def _grid_bytes(grid: Grid) -> int:
    """The arrays a cached grid holds, its solver's memoised design included."""
    arrays = [grid.ds_ns, grid.t, grid.X, *grid.solver_cache.values()]
    return sum(a.nbytes for value in arrays for a in (value if isinstance(value, tuple) else (value,)))


def build_grid(ds_ns: np.ndarray, settings: ProphetSettings) -> Grid:
    if settings.growth == "linear":
        trend_indicator = LINEAR
    elif settings.growth == "flat":
        trend_indicator = FLAT
    else:
        raise NotCovered(f"growth={settings.growth!r}")
    start_ns = int(ds_ns[0])
    t_scale_ns = int(ds_ns[-1]) - start_ns
    if t_scale_ns <= 0:
        raise NotCovered("all rows share one timestamp")
    t = scaled_time(ds_ns, start_ns, t_scale_ns)

    seasonalities = _seasonalities(ds_ns, settings)
    days = fourier_days(ds_ns)
    blocks, names, sigmas = [], [], []
    modes: dict[str, list[str]] = {"additive": [], "multiplicative": []}
    for name, props in seasonalities.items():
        blocks.append(_seasonal_block(ds_ns, days, props))
        names.extend(f"{name}_delim_{i + 1}" for i in range(2 * props["fourier_order"]))
        sigmas.extend([props["prior_scale"]] * (2 * props["fourier_order"]))
        modes[props["mode"]].append(name)
    holiday_names = _add_holidays(ds_ns, settings, blocks, names, sigmas, modes)
    regressor_modes = tuple(settings.regressor_mode(regressor) for regressor in settings.regressors)
    for regressor, mode in zip(settings.regressors, regressor_modes, strict=True):
        names.append(regressor.name)  # its column is the series' own (Grid.problem_for)
        sigmas.append(float(settings.regressor_prior_scale))
        modes[mode].append(regressor.name)
    if not names:
        blocks.append(np.zeros((len(ds_ns), 1)))
        names.append(DUMMY_COLUMN)
        sigmas.append(1.0)
    if not blocks:
        features = np.zeros((len(ds_ns), 0))
    else:
        features = np.hstack(blocks) if len(blocks) > 1 else blocks[0]
    s_a, s_m = _mode_indicators(names, modes)
    for mode in ("additive", "multiplicative"):
        modes[mode].extend([f"{mode}_terms", f"extra_regressors_{mode}"])
    modes[settings.seasonality_mode].append("holidays")  # holidays_mode defaults to seasonality_mode

    n_changepoints, changepoint_rows = _changepoints(ds_ns, settings)
    changepoints_ns = ds_ns[changepoint_rows]
    if len(changepoints_ns):
        changepoints_t = np.sort(scaled_time(changepoints_ns, start_ns, t_scale_ns))
    else:
        changepoints_t = np.array([0])  # Prophet's dummy changepoint (an int array, as Prophet's)
    return Grid(
        ds_ns=ds_ns,
        start_ns=start_ns,
        t_scale_ns=t_scale_ns,
        t=t,
        seasonalities=seasonalities,
        holiday_names=holiday_names,
        regressor_names=settings.regressor_names,
        regressor_modes=regressor_modes,
        feature_names=tuple(names),
        X=features,
        sigmas=np.asarray(sigmas, dtype=float),
        s_a=s_a,
        s_m=s_m,
        component_modes=modes,
        n_changepoints=n_changepoints,
        changepoint_rows=changepoint_rows,
        changepoints_ns=changepoints_ns,
        changepoints_t=changepoints_t,
        first_row=int(np.argmin(ds_ns)),
        last_row=int(np.argmax(ds_ns)),
        trend_indicator=trend_indicator,
        tau=float(settings.changepoint_prior_scale),
    )


def _seasonal_block(ds_ns: np.ndarray, days: np.ndarray, props: dict[str, Any]) -> np.ndarray:
    """One seasonality's Fourier columns; zero on rows where its condition (if any) is false."""
    block = fourier_features(days, props["period"], props["fourier_order"])
    if props["condition_name"] is not None:
        block[~condition_values(props["condition_name"], ds_ns)] = 0
    return block


def _add_holidays(
    ds_ns: np.ndarray,
    settings: ProphetSettings,
    blocks: list[np.ndarray],
    names: list[str],
    sigmas: list[float],
    modes: dict[str, list[str]],
) -> tuple[str, ...] | None:
    """Appends the country's holiday columns as `make_holiday_features` builds them; returns
    `train_holiday_names` (None without holiday features)."""
    if settings.country_holidays is None:
        return None
    training_names = country_holidays.training_names(settings.country_holidays, ds_ns)
    if not training_names:  # Prophet adds no holiday features for an empty calendar
        return None
    ordered = country_holidays.column_names(training_names)
    blocks.append(country_holidays.features(settings.country_holidays, ordered, ds_ns))
    names.extend(name + country_holidays.WINDOW_SUFFIX for name in ordered)
    sigmas.extend([float(settings.holidays_prior_scale)] * len(ordered))
    modes[settings.seasonality_mode].extend(training_names)  # holidays_mode is the seasonality mode
    return tuple(training_names)


def _mode_indicators(names: list[str], modes: dict[str, list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Stan's s_a and s_m: 1 where a feature column's component is additive / multiplicative."""
    s_a = np.zeros(len(names))
    s_m = np.zeros(len(names))
    for column, name in enumerate(names):
        component = name.split("_delim_")[0]
        if component in modes["additive"]:
            s_a[column] = 1.0
        elif component in modes["multiplicative"]:
            s_m[column] = 1.0
    return s_a, s_m


def scaled_time(ds_ns: np.ndarray, start_ns: int, t_scale_ns: int) -> np.ndarray:
    """`(ds - start) / t_scale` as pandas divides timedeltas: int64 nanoseconds, divided as doubles."""
    return (ds_ns - np.int64(start_ns)).astype(np.float64) / float(t_scale_ns)


def fourier_days(ds_ns: np.ndarray) -> np.ndarray:
    """Days since the epoch as `fourier_series` computes them: pandas' `total_seconds()` / 86400."""
    whole, residual = np.divmod(ds_ns, np.int64(NS_PER_SECOND))
    seconds = whole + residual / NS_PER_SECOND
    if np.any(np.abs(ds_ns) > 2**53):
        # pandas keeps a sub-second value off the integer second it rounded onto (see total_seconds).
        fixable = (residual != 0) & (np.abs(whole) < 2**52)
        whole_f = whole.astype(np.float64)
        up, down = np.nextafter(seconds, seconds + 1.0), np.nextafter(seconds, seconds - 1.0)
        seconds = np.where(fixable & (seconds == whole_f), up, seconds)
        seconds = np.where(fixable & (seconds == whole_f + 1.0), down, seconds)
    return seconds / (24 * 60 * 60)


def fourier_features(days: np.ndarray, period: float, order: int) -> np.ndarray:
    x = np.pi * 2 * days
    features = np.empty((len(days), 2 * order))
    for i in range(order):
        angle = (i + 1) / period * x
        features[:, 2 * i] = np.sin(angle)
        features[:, 2 * i + 1] = np.cos(angle)
    return features


def _seasonalities(ds_ns: np.ndarray, settings: ProphetSettings) -> OrderedDict[str, dict[str, Any]]:
    """The conditional seasonalities as `add_seasonality` stores them, then Prophet's
    `set_auto_seasonalities` for the three built-in ones."""
    span = int(ds_ns[-1]) - int(ds_ns[0])
    steps = np.diff(ds_ns)
    steps = steps[steps != 0]
    min_step = int(steps.min()) if len(steps) else None
    disabled = {
        # pandas compares NaT as False, so without a nonzero step only the span rule disables.
        "yearly": span < YEARLY_SPAN_NS,
        "weekly": span < WEEKLY_SPAN_NS or (min_step is not None and min_step >= 7 * NS_PER_DAY),
        "daily": span < DAILY_SPAN_NS or (min_step is not None and min_step >= NS_PER_DAY),
    }
    seasonalities: OrderedDict[str, dict[str, Any]] = OrderedDict()
    for added in conditional_seasonalities(settings):
        seasonalities[added["name"]] = {
            "period": added["period"],
            "fourier_order": added["fourier_order"],
            "prior_scale": float(settings.seasonality_prior_scale),
            "mode": settings.seasonality_mode,
            "condition_name": added["condition_name"],
        }
    switches = settings.constructor_kwargs()  # the Prophet object's own (daily off when conditioned)
    for name, period, default_order in BUILT_IN:
        order = _fourier_order(switches[f"{name}_seasonality"], disabled[name], default_order)
        if order > 0:
            seasonalities[name] = {
                "period": period,
                "fourier_order": order,
                "prior_scale": settings.seasonality_prior_scale,
                "mode": settings.seasonality_mode,
                "condition_name": None,
            }
    return seasonalities


def _fourier_order(arg: str | bool | int, auto_disable: bool, default_order: int) -> int:
    if arg == "auto":
        return 0 if auto_disable else default_order
    if arg is True:
        return default_order
    if arg is False:
        return 0
    return int(arg)


def _changepoints(ds_ns: np.ndarray, settings: ProphetSettings) -> tuple[int, np.ndarray]:
    """Prophet's `set_changepoints` grid: the effective count and the rows the changepoints sit on."""
    hist_size = math.floor(len(ds_ns) * settings.changepoint_range)
    n_changepoints = settings.n_changepoints
    if n_changepoints + 1 > hist_size:
        n_changepoints = hist_size - 1
    if n_changepoints <= 0:
        return n_changepoints, np.array([], dtype=np.int64)
    rows = np.linspace(0, hist_size - 1, n_changepoints + 1).round().astype(int)
    return n_changepoints, rows[1:]
