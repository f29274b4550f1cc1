"""Prophet's model.json written from numpy, byte-identical to `prophet.serialize.model_to_json`.

Stock serialization builds pandas JSON writers for five frames and series, then lets `json.dumps` escape
those strings again. Here the same text is written directly: numbers are formatted by pandas' own C
encoder (`ujson_dumps`, so its double_precision=10 rounding is the same by construction), dates by a
vectorized civil-date formatter, and the nested JSON is emitted already escaped for the outer string.
What depends on the timestamp grid alone (date texts, Prophet's `t`) is remembered for recent grids.

`FittedState` holds exactly what the JSON needs, as numpy arrays and Python scalars. Build it from numpy
(the fit engine) or from a fitted stock Prophet (`FittedState.from_prophet`). Country holidays and extra
regressors are written exactly; anything this writer cannot reproduce byte for byte (a custom holidays
frame, unusual column types) raises `NotExact`; `model_to_json` catches it and falls back to stock
serialization.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from collections import OrderedDict
from copy import deepcopy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pandas._libs._ujson import ujson_dumps
from pandas.io.json._table_schema import TABLE_SCHEMA_VERSION

if TYPE_CHECKING:
    import pandas as pd
    from prophet import Prophet

PROPHET_VERSION = "1.5.0"  # the version whose format this reproduces; to_json checks the installed one
DOUBLE_PRECISION = 10  # pandas' to_json default
# Names written without escaping: ujson and json.dumps escape other characters differently.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_ .-]*\Z")
_Q = '\\"'  # a double quote inside the outer JSON string
_MS_PER_DAY = 86_400_000
_FIRST_MS = -719_162 * _MS_PER_DAY  # 0001-01-01: numpy and pandas agree on four-digit years only
_END_MS = 2_932_897 * _MS_PER_DAY  # 10000-01-01
_FEW_DATES = 250  # below this, numpy's datetime_as_string is cheaper (measured)
# A fleet's customers mostly share a few timestamp grids: the texts of a grid's dates and of Prophet's
# time index `t` (a function of the grid alone) are remembered for this many grids, keyed by their bytes
# (about 165 bytes a row: 0.7 MB for a 12-week half-hourly grid).
_GRIDS_REMEMBERED = 16
_GRID_COLUMN = "t"
_TENS = np.array([ord("0") + n // 10 for n in range(100)], dtype=np.uint8)
_ONES = np.array([ord("0") + n % 10 for n in range(100)], dtype=np.uint8)

SIMPLE_ATTRIBUTES = (
    "growth",
    "n_changepoints",
    "specified_changepoints",
    "changepoint_range",
    "yearly_seasonality",
    "weekly_seasonality",
    "daily_seasonality",
    "seasonality_mode",
    "seasonality_prior_scale",
    "changepoint_prior_scale",
    "holidays_prior_scale",
    "mcmc_samples",
    "interval_width",
    "uncertainty_samples",
    "y_scale",
    "y_min",
    "scaling",
    "logistic_floor",
    "country_holidays",
    "component_modes",
    "holidays_mode",
)


class NotExact(Exception):  # noqa: N818 - named like solver.NotCovered and compiled.NotCompilable
    """This state cannot be written byte-identical to stock model_to_json; use stock serialization."""


@dataclass
class FittedState:
    """What Prophet's model.json holds, without pandas objects. Field types are part of the contract.

    Python types of the scalars matter (`7` and `7.0` serialize differently): use what Prophet stores.
    """

    # Prophet.__init__ settings and fit results, as on the Prophet object (SIMPLE_ATTRIBUTES order).
    growth: str
    n_changepoints: int  # after set_changepoints' reduction for short histories
    specified_changepoints: bool
    changepoint_range: float
    yearly_seasonality: str | bool | int
    weekly_seasonality: str | bool | int
    daily_seasonality: str | bool | int
    seasonality_mode: str
    seasonality_prior_scale: float
    changepoint_prior_scale: float
    holidays_prior_scale: float
    mcmc_samples: int
    interval_width: float
    uncertainty_samples: int
    y_scale: float
    y_min: float
    scaling: str
    logistic_floor: bool
    country_holidays: str | None
    component_modes: dict[str, list[str]]
    holidays_mode: str
    start: float  # pd.Timestamp(start).timestamp(): seconds since the epoch
    t_scale: float  # pd.Timedelta(t_scale).total_seconds()
    # Dates may have any datetime64 unit (ns is what numpy code naturally has; pandas 3 keeps us).
    changepoints: np.ndarray  # datetime64 (c,); empty when n_changepoints == 0
    changepoints_index: np.ndarray  # int64 (c,): the Series' labels, i.e. history row numbers
    history_dates: np.ndarray  # datetime64 (u,): sorted unique input dates, NaN-y rows included
    history: dict[str, np.ndarray]  # Prophet's history frame, column order kept; each 1-D, length n
    component_cols: np.ndarray  # int64 (features, components), 0/1: train_component_cols' values
    component_names: list[str]  # train_component_cols' columns, in order
    changepoints_t: np.ndarray  # float64 (c,); Prophet's dummy is np.array([0]), int64, written "[0]"
    seasonalities: OrderedDict[str, dict[str, Any]]
    extra_regressors: OrderedDict[str, dict[str, Any]]
    fit_kwargs: dict[str, Any]
    params: dict[str, np.ndarray]  # Prophet's params, key order kept; each float64 2-D (samples, size)
    # history_dates' labels: each date's rank in order of first appearance (pd.unique's order) in the
    # input frame; None when that is 0..u-1 (input sorted by date).
    history_dates_index: np.ndarray | None = None
    holidays: pd.DataFrame | None = field(default=None, repr=False)  # a custom holidays frame -> NotExact
    train_holiday_names: list[str] | None = None  # the holiday names seen in training, in Prophet's order

    @classmethod
    def from_prophet(cls, model: Prophet) -> FittedState:
        """The state of a fitted stock Prophet (tests, and models that went through Stan)."""
        if model.history is None:
            raise ValueError("This can only be used to serialize models that have already been fit.")
        simple = {name: getattr(model, name) for name in SIMPLE_ATTRIBUTES}
        history_dates = model.history_dates
        dates_index = history_dates.index.to_numpy()
        tcc = model.train_component_cols
        return cls(
            **simple,
            start=model.start.timestamp(),
            t_scale=model.t_scale.total_seconds(),
            changepoints=model.changepoints.to_numpy(),
            changepoints_index=model.changepoints.index.to_numpy(),
            history_dates=history_dates.to_numpy(),
            history_dates_index=None if _is_range(dates_index) else dates_index,
            history={name: model.history[name].to_numpy() for name in model.history.columns},
            component_cols=tcc.to_numpy(),
            component_names=list(tcc.columns),
            changepoints_t=model.changepoints_t,
            seasonalities=model.seasonalities,
            extra_regressors=model.extra_regressors,
            fit_kwargs=model.fit_kwargs,
            params=model.params,
            holidays=model.holidays,
            train_holiday_names=_holiday_names(model.train_holiday_names),
        )


def _holiday_names(names: pd.Series | None) -> list[str] | None:
    if names is None:
        return None
    if not _is_range(names.index.to_numpy()) or names.name is not None:
        raise NotExact("train_holiday_names with a non-default index or a name")
    values = names.tolist()
    if not all(isinstance(value, str) for value in values):
        raise NotExact("train_holiday_names that are not all strings")
    return values


def model_to_json(model: Prophet) -> str:
    """`prophet.serialize.model_to_json(model)`, faster; stock serialization where not exact."""
    try:
        return to_json(FittedState.from_prophet(model))
    except NotExact:
        from prophet.serialize import model_to_json as stock

        return stock(model)


def to_json(state: FittedState) -> str:
    """The model.json text stock `model_to_json` writes for the Prophet this state describes."""
    if state.holidays is not None:
        raise NotExact("a custom holidays frame is written by stock serialization")
    _check_prophet_version()
    dates = _DateTexts(state)
    regressors = OrderedDict()
    for name, props in state.extra_regressors.items():
        cleaned = deepcopy(props)
        cleaned["predictor"] = None
        regressors[name] = cleaned
    # json.dumps of a dict is "{" + '"key": value' joined by ", " + "}": the plain values are written by
    # three dumps in stock key order (braces dropped), the pandas-written ones in between.
    simple = {name: getattr(state, name) for name in SIMPLE_ATTRIBUTES}
    scales = {"start": state.start, "t_scale": state.t_scale}
    rest = {
        "changepoints_t": state.changepoints_t.tolist(),
        "seasonalities": [list(state.seasonalities), state.seasonalities],
        "extra_regressors": [list(regressors), regressors],
        "fit_kwargs": _plain_fit_kwargs(state.fit_kwargs),
        "params": {name: value.tolist() for name, value in state.params.items()},
        "__prophet_version": PROPHET_VERSION,
    }
    parts = (
        json.dumps(simple)[1:-1],
        '"changepoints": ' + _series(dates.changepoints, state.changepoints_index),
        '"history_dates": ' + _series(dates.history_dates, state.history_dates_index),
        '"train_holiday_names": ' + _names_series(state.train_holiday_names),
        json.dumps(scales)[1:-1],
        '"holidays": null',
        '"history": ' + _history_table(state.history, dates.history),
        '"train_component_cols": ' + _component_table(state.component_cols, state.component_names),
        json.dumps(rest)[1:-1],
    )
    return "{" + ", ".join(parts) + "}"


class _DateTexts:
    """The ISO text of every date the JSON holds, formatted in one vectorized pass."""

    def __init__(self, state: FittedState) -> None:
        arrays = [state.history_dates, state.changepoints]
        columns = []
        for name, values in state.history.items():
            if values.dtype.kind == "M" and not np.array_equal(values, state.history_dates):
                columns.append(name)
                arrays.append(values)
        for values in arrays:
            if values.dtype.kind != "M" or values.ndim != 1:
                raise NotExact(f"dates of dtype {values.dtype}, shape {values.shape}")
        texts = _grid_dates(np.concatenate([values.astype("datetime64[ms]") for values in arrays]).tobytes())
        bounds = np.cumsum([0] + [len(values) for values in arrays]).tolist()
        pieces = [texts[low:high] for low, high in itertools.pairwise(bounds)]
        self.history_dates = pieces[0]
        self.changepoints = pieces[1]
        # Sorted, duplicate-free, no NaN rows dropped: history's ds is history_dates (the usual case).
        self.history = {
            name: self.history_dates for name, values in state.history.items() if values.dtype.kind == "M"
        }
        self.history.update(zip(columns, pieces[2:], strict=True))


@functools.cache
def _check_prophet_version() -> None:
    # From the installed distribution's metadata: importing prophet costs a worker a quarter second.
    from importlib.metadata import version

    __version__ = version("prophet")
    if __version__ != PROPHET_VERSION:
        raise NotExact(f"written for prophet {PROPHET_VERSION}, installed {__version__}")


def _plain_fit_kwargs(fit_kwargs: dict[str, Any]) -> dict[str, Any]:
    """As stock: numpy values of `init` made plain (nothing else is converted)."""
    if "init" not in fit_kwargs:
        return fit_kwargs
    plain = deepcopy(fit_kwargs)
    for key, value in plain["init"].items():
        if isinstance(value, np.ndarray):
            plain["init"][key] = value.tolist()
        elif isinstance(value, np.floating):
            plain["init"][key] = float(value)
    return plain


def _is_range(index: np.ndarray) -> bool:
    return bool(np.array_equal(index, np.arange(len(index))))


def _plain_name(name: str) -> str:
    """A column name as it appears inside the escaped table text (pandas' escaping, then json.dumps')."""
    if not isinstance(name, str):
        raise NotExact(f"column name {name!r} is not a string")
    if _PLAIN_NAME.match(name):
        return name
    return _escaped_name(name)


@functools.lru_cache(maxsize=4096)
def _escaped_name(name: str) -> str:
    # pandas writes the name as a JSON string (its own escapes, e.g. \/ and \uXXXX); the outer json.dumps
    # escapes that text again. Holiday names ("New Year's Day (observed)") come through here.
    return json.dumps(ujson_dumps(name))[3:-3]


def _names_series(names: list[str] | None) -> str:
    """Series(names).to_json(orient='split') as stock writes train_holiday_names, escaped; or null."""
    if names is None:
        return "null"
    inner = ujson_dumps({"name": None, "index": list(range(len(names))), "data": names})
    return json.dumps(inner)


def _iso_dates(values: np.ndarray) -> list[str]:
    """pandas' ISO text of datetime64[ms] values (pandas floors to milliseconds): 2022-01-06T00:00:00.000."""
    ms = values.view(np.int64)
    if len(ms) and (ms.min() < _FIRST_MS or ms.max() >= _END_MS):
        raise NotExact("dates outside years 0001-9999")
    if len(ms) < _FEW_DATES:  # numpy's own formatter is cheaper than the many passes below
        return np.datetime_as_string(values, unit="ms").tolist()
    days, in_day = np.divmod(ms, _MS_PER_DAY)
    year, month, day = _civil(days)
    hour, in_hour = np.divmod(in_day, 3_600_000)
    minute, in_minute = np.divmod(in_hour, 60_000)
    second, milli = np.divmod(in_minute, 1000)
    century, year_in_century = np.divmod(year, 100)
    hundreds, milli_in_hundred = np.divmod(milli, 100)
    # One row of ASCII per character position (contiguous writes), then read column-wise.
    text = np.empty((24, len(ms)), dtype=np.uint8)
    for row, number in (
        (0, century),
        (2, year_in_century),
        (5, month),
        (8, day),
        (11, hour),
        (14, minute),
        (17, second),
        (21, milli_in_hundred),
    ):
        np.take(_TENS, number, out=text[row])
        np.take(_ONES, number, out=text[row + 1])
    np.add(hundreds, ord("0"), out=text[20], casting="unsafe")
    for row, char in ((4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":"), (19, "."), (23, ",")):
        text[row] = ord(char)
    return text.T.tobytes().decode("ascii")[:-1].split(",")


@functools.lru_cache(maxsize=_GRIDS_REMEMBERED)
def _grid_dates(ms: bytes) -> list[str]:
    return _iso_dates(np.frombuffer(ms, dtype="datetime64[ms]"))


@functools.lru_cache(maxsize=_GRIDS_REMEMBERED)
def _grid_numbers(float64: bytes) -> list[str] | str:
    return _number_tokens(np.frombuffer(float64, dtype=np.float64))


def written_floats(values: np.ndarray) -> np.ndarray:
    """float64 values as model.json holds them (pandas' double_precision=10), i.e. as a reader gets them."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    tokens = _grid_numbers(values.tobytes())
    if isinstance(tokens, str):  # one repeated value, written once
        return np.full(len(values), float(tokens))
    return np.array([float(token) for token in tokens], dtype=np.float64)


def _civil(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(year, month, day) of days since 1970-01-01, proleptic Gregorian (Hinnant's civil_from_days)."""
    shifted = days + 719_468
    era = shifted // 146_097
    day_of_era = shifted - era * 146_097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_index = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * month_index + 2) // 5 + 1
    month = np.where(month_index < 10, month_index + 3, month_index - 9)
    year = year_of_era + era * 400 + (month <= 2)
    return year, month, day


def _number_tokens(values: np.ndarray) -> list[str] | str:
    """Each value as pandas' to_json writes it (float64 at double_precision=10, int64, bool).

    A column of one repeated value (floor, indicator columns) gives that value's text once.
    """
    if values.dtype not in (np.float64, np.int64, np.bool_):
        raise NotExact(f"column of dtype {values.dtype}")
    if len(values) and (values == values[0]).all():
        return ujson_dumps(values[:1], double_precision=DOUBLE_PRECISION)[1:-1]
    text = ujson_dumps(np.ascontiguousarray(values), double_precision=DOUBLE_PRECISION)
    return text[1:-1].split(",")


@functools.lru_cache(maxsize=64)
def _range_text(count: int) -> str:
    """A default index 0..count-1 as JSON: the same few history lengths recur over a fleet."""
    return ujson_dumps(np.arange(count))


def _ints(values: np.ndarray | None, count: int) -> str:
    if values is None:
        return _range_text(count)
    if values.dtype.kind not in "iu" and len(values):  # an empty index (e.g. loaded back) is [] in any dtype
        raise NotExact(f"index of dtype {values.dtype}")
    return ujson_dumps(np.ascontiguousarray(values, dtype=np.int64))


def _series(dates: list[str], index: np.ndarray | None) -> str:
    """Series.to_json(orient='split', date_format='iso') of a datetime Series named ds, escaped."""
    data = "[" + _Q + (_Q + "," + _Q).join(dates) + _Q + "]" if dates else "[]"
    return f'"{{{_Q}name{_Q}:{_Q}ds{_Q},{_Q}index{_Q}:{_ints(index, len(dates))},{_Q}data{_Q}:{data}}}"'


_TABLE_TYPES = {"M": "datetime", "f": "number", "i": "integer", "b": "boolean"}


def _table(columns: list[tuple[str, np.ndarray, list[str] | str]], rows: int) -> str:
    """DataFrame.to_json(orient='table', index=False), escaped: the schema, then one record per row.

    `columns` are (name, values, texts): each value's JSON text (dates without their quotes), or one text
    for a column of one repeated value.
    """
    fields = ",".join(
        f"{{{_Q}name{_Q}:{_Q}{name}{_Q},{_Q}type{_Q}:{_Q}{_TABLE_TYPES[values.dtype.kind]}{_Q}}}"
        for name, values, _ in columns
    )
    schema = f"{{{_Q}fields{_Q}:[{fields}],{_Q}pandas_version{_Q}:{_Q}{TABLE_SCHEMA_VERSION}{_Q}}}"
    # A record is fixed[0] varying[0][i] fixed[1] ... varying[-1][i] fixed[-1]: keys, quotes and
    # repeated values are fixed text, so one join over [fixed, value, fixed, value, ...] writes all rows.
    fixed = ["{"]
    varying: list[list[str]] = []
    for position, (name, values, texts) in enumerate(columns):
        quote = _Q if values.dtype.kind == "M" else ""
        fixed[-1] += ("," if position else "") + f"{_Q}{name}{_Q}:{quote}"
        if isinstance(texts, str):
            fixed[-1] += texts + quote
        else:
            varying.append(texts)
            fixed.append(quote)
    fixed[-1] += "}"
    if not varying:
        records = ",".join([fixed[0]] * rows)
    else:
        width = 2 * len(varying)
        flat: list[str | None] = [None] * (width * rows)
        between = fixed[-1] + "," + fixed[0]  # a record's end, then the next one's start
        flat[0::width] = [between] * rows
        flat[0] = fixed[0]
        for position, texts in enumerate(varying):
            if position:
                flat[2 * position :: width] = [fixed[position]] * rows
            flat[2 * position + 1 :: width] = texts
        records = "".join(flat) + fixed[-1]
    return f'"{{{_Q}schema{_Q}:{schema},{_Q}data{_Q}:[{records}]}}"'


def _history_table(history: dict[str, np.ndarray], dates: dict[str, list[str]]) -> str:
    rows = len(next(iter(history.values())))
    columns = []
    for name, values in history.items():
        if len(values) != rows or values.ndim != 1:
            raise NotExact(f"history column {name!r} is not 1-D of length {rows}")
        if values.dtype.kind == "M":
            tokens = dates[name]
        elif name == _GRID_COLUMN and values.dtype == np.float64:
            tokens = _grid_numbers(values.tobytes())
        else:
            tokens = _number_tokens(values)
        columns.append((_plain_name(name), values, tokens))
    return _table(columns, rows)


def _component_table(matrix: np.ndarray, names: list[str]) -> str:
    if matrix.ndim != 2 or matrix.shape[1] != len(names):
        raise NotExact(f"component_cols of shape {matrix.shape} for {len(names)} names")
    columns = [
        (_plain_name(name), matrix[:, j], _number_tokens(matrix[:, j])) for j, name in enumerate(names)
    ]
    return _table(columns, matrix.shape[0])
