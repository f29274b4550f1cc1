"""The compiled predictor against Prophet's own predict, on real fits.

Point forecasts and components are compared at 1e-9 relative (they are in fact bit-identical: same
operations in the same order). Intervals are compared twice: exactly, when our sampler draws from a legacy
RandomState seeded like Prophet's np.random; and statistically, with a numpy Generator, over many seeds.
"""

from __future__ import annotations

import functools
import json
import logging

import numpy as np
import pandas as pd
import pytest

from fleetcast.data.generate import customer_series
from fleetcast.model.compiled import (
    CompiledModel,
    NotCompilable,
    compile_model,
    compile_model_json,
    future_dates,
    percentile_rows,
)
from fleetcast.model.conditions import add_condition_columns
from fleetcast.model.dates import future_frame
from fleetcast.model.prophet_model import (
    _prophet_class,
    fit_prophet,
    model_from_json,
    model_to_json,
)
from fleetcast.model.settings import ProphetSettings

RTOL = 1e-9


def _series(kind: str, seed: int = 0) -> pd.DataFrame:
    """Small histories shaped like fleetcast's data: seasonal, noisy, some with gaps."""
    rng = np.random.default_rng(seed)
    if kind == "daily":  # > 2 years: Prophet's auto yearly seasonality switches on
        ds = pd.date_range("2021-01-01", periods=760, freq="D")
    elif kind == "daily-short":  # 10 months, gaps
        ds = pd.date_range("2022-01-01", periods=300, freq="D")[np.sort(rng.choice(300, 240, replace=False))]
    elif kind == "hourly":
        ds = pd.date_range("2023-03-01", periods=24 * 21, freq="h")
    elif kind == "fleet":  # exactly what `fleetcast generate` writes for one customer
        grid = pd.date_range("2022-01-01", "2023-01-01", freq="D", inclusive="left")
        stamps, values = customer_series(seed, 42, grid, 330)
        return pd.DataFrame({"ds": stamps, "y": values})
    elif kind == "tiny":  # fewer rows than changepoints
        ds = pd.date_range("2023-01-01", periods=18, freq="D")
    else:
        raise ValueError(kind)
    days = (ds - pd.Timestamp("2000-01-01")) / pd.Timedelta(days=1)
    days = np.asarray(days, dtype=float)
    y = (
        300
        + 0.2 * (days - days[0])
        + 40 * np.sin(2 * np.pi * days / 365.25)
        + 25 * np.sin(2 * np.pi * days / 7 + 1)
        + 15 * np.sin(2 * np.pi * days + 2)
        + rng.normal(0, 6, len(ds))
    )
    return pd.DataFrame({"ds": ds, "y": y})


# Every shape of model `fleetcast train` can produce: growth x mode x seasonality switches x data frequency.
CONFIGS: dict[str, tuple[str, dict]] = {
    "daily-defaults": ("daily", {}),
    "daily-multiplicative": ("daily", {"seasonality_mode": "multiplicative"}),
    "daily-flat": ("daily", {"growth": "flat"}),
    "daily-flat-multiplicative": ("daily-short", {"growth": "flat", "seasonality_mode": "multiplicative"}),
    "daily-custom-orders": (
        "daily",
        {"yearly_seasonality": 4, "weekly_seasonality": 5, "daily_seasonality": False},
    ),
    "daily-forced-daily": ("daily-short", {"yearly_seasonality": True, "daily_seasonality": 2}),
    "daily-no-seasonality": (
        "daily-short",
        {"yearly_seasonality": False, "weekly_seasonality": False, "daily_seasonality": False},
    ),
    "daily-no-changepoints": ("daily-short", {"n_changepoints": 0}),
    "daily-wide-interval": ("daily-short", {"interval_width": 0.95, "uncertainty_samples": 300}),
    "daily-gappy": ("daily-short", {"changepoint_prior_scale": 0.5, "n_changepoints": 40}),
    "fleet-customer": ("fleet", {}),
    "fleet-customer-multiplicative": (
        "fleet",
        {"seasonality_mode": "multiplicative", "changepoint_range": 0.9},
    ),
    "hourly-defaults": ("hourly", {}),
    "hourly-multiplicative": ("hourly", {"seasonality_mode": "multiplicative", "daily_seasonality": 8}),
    "hourly-flat": ("hourly", {"growth": "flat", "weekly_seasonality": False}),
    "tiny-history": ("tiny", {}),
    "hourly-day-type": ("hourly", {"daily_by_day_type": True}),
    "hourly-day-type-multiplicative": (
        "hourly",
        {"daily_by_day_type": True, "seasonality_mode": "multiplicative", "daily_seasonality": 6},
    ),
}
FREQ = {"daily": "D", "daily-short": "D", "fleet": "D", "hourly": "h", "tiny": "D"}


@functools.cache
def fitted(name: str):
    kind, settings = CONFIGS[name]
    return fit_prophet(_series(kind), ProphetSettings(**settings))


@functools.cache
def fitted_roundtrip(name: str):
    """What serving sees: the model rebuilt from the artifact's model.json."""
    return model_from_json(model_to_json(fitted(name)))


def _prophet_predict(model, dates: np.ndarray, seed: int | None = None) -> pd.DataFrame:
    if seed is not None:
        np.random.seed(seed)
    # Stock predict reads condition columns from the frame; fleetcast's come from ds (model/conditions.py).
    return model.predict(add_condition_columns(pd.DataFrame({"ds": dates}), model.seasonalities))


def _date_sets(model, freq: str) -> dict[str, np.ndarray]:
    last = model.history["ds"].max()
    history = model.history["ds"].to_numpy(dtype="datetime64[ns]")
    ahead = future_dates(last, 30, freq)
    return {
        "week": future_dates(last, 7, freq),
        "month": ahead,
        "one-step": future_dates(last, 1, freq),
        "history-and-future": np.concatenate([history[-5:], ahead[:5]]),
        "history-only": history[::7],
        "unsorted": ahead[::-1][:10],
    }


def _assert_close(ours: np.ndarray, theirs: np.ndarray, scale: float, what: str) -> None:
    # Relative to each value; components that pass through zero are held to 1e-9 of the series scale.
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=RTOL * 1e-3 * scale, err_msg=what)


@pytest.mark.parametrize("source", ["fitted", "from-json"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_point_forecast_and_components_match_prophet(name: str, source: str) -> None:
    model = fitted(name) if source == "fitted" else fitted_roundtrip(name)
    compiled = compile_model(model)
    kind = CONFIGS[name][0]
    for label, dates in _date_sets(model, FREQ[kind]).items():
        expected = _prophet_predict(model, dates, seed=1)
        ours = compiled.predict(dates, components=True, intervals=False)
        what = f"{name}/{source}/{label}"
        np.testing.assert_array_equal(ours.ds, expected["ds"].to_numpy(dtype="datetime64[ns]"), err_msg=what)
        _assert_close(ours.yhat, expected["yhat"].to_numpy(), compiled.y_scale, f"{what} yhat")
        names = ["trend", "additive_terms", "multiplicative_terms", *model.seasonalities]
        for column in names:
            _assert_close(
                ours.components[column], expected[column].to_numpy(), compiled.y_scale, f"{what} {column}"
            )
        assert ours.yhat_lower is None and ours.yhat_upper is None


@pytest.mark.parametrize(
    ("name", "source"),
    [(name, "from-json") for name in sorted(CONFIGS)]
    + [("daily-defaults", "fitted"), ("hourly-flat", "fitted")],
)
def test_intervals_reproduce_prophet_draw_for_draw(name: str, source: str) -> None:
    """Seeded alike, the vectorised sampler makes Prophet's draws in Prophet's order: same bounds.

    Mostly on models read back from model.json, as serving sees them (the point test covers both)."""
    model = fitted(name) if source == "fitted" else fitted_roundtrip(name)
    compiled = compile_model(model)
    kind = CONFIGS[name][0]
    for label, dates in _date_sets(model, FREQ[kind]).items():
        seed = 1234 + len(dates)
        expected = _prophet_predict(model, dates, seed=seed)
        ours = compiled.predict(dates, components=True, seed=np.random.RandomState(seed))
        for column in ("yhat_lower", "yhat_upper", "trend_lower", "trend_upper"):
            _assert_close(
                getattr(ours, column),
                expected[column].to_numpy(),
                compiled.y_scale,
                f"{name}/{label} {column}",
            )


@pytest.mark.parametrize("name", ["daily-defaults", "hourly-multiplicative", "daily-gappy"])
def test_generator_intervals_agree_with_prophet_within_sampling_error(name: str) -> None:
    """Independent streams: over R seeds the mean bounds differ by no more than sampling error allows.

    Each bound is a quantile of `uncertainty_samples` draws, so it varies from seed to seed with some
    standard deviation sd (measured here on both sides). The mean of R seeds has standard error
    sd/sqrt(R); the two means may differ by a few of those and no more.
    """
    model = fitted(name)
    compiled = compile_model(model)
    dates = future_dates(model.history["ds"].max(), 30, FREQ[CONFIGS[name][0]])
    rounds = 30
    theirs = {"yhat_lower": [], "yhat_upper": []}
    ours = {"yhat_lower": [], "yhat_upper": []}
    for seed in range(rounds):
        prophet = _prophet_predict(model, dates, seed=seed)
        forecast = compiled.predict(dates, seed=10_000 + seed)
        for column, draws in theirs.items():
            draws.append(prophet[column].to_numpy())
            ours[column].append(getattr(forecast, column))
    width = np.mean(theirs["yhat_upper"], axis=0) - np.mean(theirs["yhat_lower"], axis=0)
    for column, draws in theirs.items():
        a, b = np.array(ours[column]), np.array(draws)
        standard_error = np.sqrt((a.var(axis=0, ddof=1) + b.var(axis=0, ddof=1)) / rounds)
        gap = np.abs(a.mean(axis=0) - b.mean(axis=0))
        assert np.all(gap <= 5 * standard_error + 1e-12), f"{column}: gap {gap} vs 5 SE {5 * standard_error}"
        # The test has teeth: sampling error is a small fraction of the interval's width.
        assert np.all(5 * standard_error < 0.1 * width)
        # Same seed-to-seed spread too (same number of draws, same distribution).
        ratio = a.std(axis=0, ddof=1) / b.std(axis=0, ddof=1)
        assert np.all((ratio > 0.4) & (ratio < 2.5)), ratio


def test_intervals_are_reproducible_for_a_seed() -> None:
    compiled = compile_model(fitted("daily-defaults"))
    dates = future_dates(fitted("daily-defaults").history["ds"].max(), 14, "D")
    first = compiled.predict(dates, seed=7)
    again = compiled.predict(dates, seed=7)
    other = compiled.predict(dates, seed=8)
    np.testing.assert_array_equal(first.yhat_lower, again.yhat_lower)
    np.testing.assert_array_equal(first.yhat_upper, again.yhat_upper)
    assert not np.array_equal(first.yhat_upper, other.yhat_upper)
    np.testing.assert_array_equal(first.yhat, other.yhat)
    assert np.all(first.yhat_lower < first.yhat) and np.all(first.yhat < first.yhat_upper)


def test_no_uncertainty_samples_means_no_intervals() -> None:
    model = fit_prophet(_series("daily-short"), ProphetSettings(uncertainty_samples=0))
    compiled = compile_model(model)
    dates = future_dates(model.history["ds"].max(), 7, "D")
    forecast = compiled.predict(dates)
    assert forecast.yhat_lower is None
    expected = model.predict(pd.DataFrame({"ds": dates}))
    assert "yhat_lower" not in expected
    _assert_close(forecast.yhat, expected["yhat"].to_numpy(), compiled.y_scale, "yhat")


def test_constant_history_compiles_like_prophet() -> None:
    """Prophet skips Stan for a constant series (sigma_obs 1e-9, initial parameters)."""
    frame = _series("daily-short")
    frame["y"] = 42.0
    model = fit_prophet(frame, ProphetSettings())
    compiled = compile_model(model)
    dates = future_dates(frame["ds"].max(), 7, "D")
    expected = _prophet_predict(model, dates, seed=3)
    ours = compiled.predict(dates, seed=np.random.RandomState(3))
    for column in ("yhat", "yhat_lower", "yhat_upper"):
        _assert_close(getattr(ours, column), expected[column].to_numpy(), 42.0, column)


def test_minmax_scaling_and_unconditional_custom_seasonality_are_covered() -> None:
    """Beyond what train produces, but the same arithmetic: a floor offset and one more Fourier block."""
    model = _prophet_class()(scaling="minmax", weekly_seasonality=False, yearly_seasonality=False)
    model.add_seasonality(name="monthly", period=30.5, fourier_order=5, mode="multiplicative")
    model.fit(_series("daily-short"))
    compiled = compile_model(model)
    dates = future_dates(model.history["ds"].max(), 45, "D")
    expected = _prophet_predict(model, dates, seed=5)
    ours = compiled.predict(dates, components=True, seed=np.random.RandomState(5))
    for column in ("yhat", "yhat_lower", "yhat_upper"):
        _assert_close(getattr(ours, column), expected[column].to_numpy(), compiled.y_scale, column)
    _assert_close(ours.components["monthly"], expected["monthly"].to_numpy(), compiled.y_scale, "monthly")


def _fit_raw(frame: pd.DataFrame, setup, **kwargs):
    model = _prophet_class()(**kwargs)
    setup(model)
    return model.fit(frame)


def _unsupported_models():
    frame = _series("daily-short")
    with_flag = frame.assign(on=frame["ds"].dt.dayofweek < 5)
    holidays = pd.DataFrame({"holiday": "maintenance", "ds": frame["ds"].iloc[[20, 120, 220]]})
    yield "holidays", _fit_raw(frame, lambda m: None, holidays=holidays)
    yield (
        "forecast by its own model",  # plain regressors are covered (test_compiled_drivers.py)
        _fit_raw(
            frame.assign(temp=np.cos(np.arange(len(frame)))),
            lambda m: m.add_regressor("temp", regressor_predictor=True),
        ),
    )
    yield (
        "conditioned on the input column 'on'",
        _fit_raw(
            with_flag,
            lambda m: m.add_seasonality(name="workweek", period=7, fourier_order=3, condition_name="on"),
            weekly_seasonality=False,
        ),
    )
    yield "growth='logistic'", _fit_raw(frame.assign(cap=1000.0), lambda m: None, growth="logistic")
    yield "MCMC", _fit_raw(frame.iloc[:60], lambda m: None, mcmc_samples=10, weekly_seasonality=False)


@pytest.mark.filterwarnings("ignore")
def test_models_it_does_not_cover_are_refused_with_a_reason(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL)
    seen = []
    for reason, model in _unsupported_models():
        with pytest.raises(NotCompilable) as error:
            compile_model(model)
        assert reason in error.value.reason, (reason, error.value.reason)
        seen.append(reason)
    assert len(seen) == 5
    with pytest.raises(NotCompilable, match="not fitted"):
        compile_model(_prophet_class()())


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_compiling_straight_from_model_json_equals_compiling_the_loaded_model(name: str) -> None:
    """The serving path without Prophet: same numbers as model_from_json + compile_model."""
    text = model_to_json(fitted(name))
    direct = compile_model_json(text).to_dict()
    via_prophet = compile_model(model_from_json(text)).to_dict()
    # pandas.read_json parses the history's 10-digit decimals to within an ulp of json.loads.
    assert direct.pop("history_step_t") == pytest.approx(via_prophet.pop("history_step_t"), rel=1e-14)
    assert direct == via_prophet


@pytest.mark.filterwarnings("ignore")
def test_model_json_of_uncovered_models_is_refused_for_the_same_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.CRITICAL)
    for reason, model in _unsupported_models():
        with pytest.raises(NotCompilable) as error:
            compile_model_json(model_to_json(model))
        assert reason in error.value.reason, (reason, error.value.reason)


def test_models_from_other_prophet_releases_are_refused() -> None:
    data = json.loads(model_to_json(fitted("daily-defaults")))
    assert data["__prophet_version"].startswith("1.5.")
    for version in ("1.1.5", "2.0.0"):
        with pytest.raises(NotCompilable, match=f"Prophet {version}"):
            compile_model_json(json.dumps({**data, "__prophet_version": version}))


@pytest.mark.parametrize("text", ["", "[]", '{"growth": "linear"}', '{"history": "{}"}', "not json"])
def test_model_json_that_is_not_a_prophet_model_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="not a fitted Prophet model"):
        compile_model_json(text)


def test_serialised_form_is_small_and_predicts_identically() -> None:
    model = fitted_roundtrip("daily-defaults")
    compiled = compile_model(model)
    text = json.dumps(compiled.to_dict())
    again = CompiledModel.from_dict(json.loads(text))
    assert len(text) < 4000, len(text)  # vs model.json, which carries the whole history
    assert len(text) * 10 < len(model_to_json(model))
    dates = future_dates(model.history["ds"].max(), 7, "D")
    first, second = compiled.predict(dates, seed=11), again.predict(dates, seed=11)
    for column in ("yhat", "yhat_lower", "yhat_upper"):
        np.testing.assert_array_equal(getattr(first, column), getattr(second, column))
    assert again.to_dict() == compiled.to_dict()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="something-else"), "not a fleetcast-compiled-prophet"),
        (lambda d: d.update(format_version=99), "version 99"),
        (lambda d: d.pop("beta"), "incomplete"),
        (lambda d: d.update(growth="logistic"), "logistic"),
        (lambda d: d["seasonalities"][0].update(mode="sideways"), "mode"),
        (lambda d: d.update(beta=[1.0]), "coefficients"),
    ],
)
def test_from_dict_rejects_bad_documents(mutate, message: str) -> None:
    data = compile_model(fitted("daily-defaults")).to_dict()
    mutate(data)
    with pytest.raises((ValueError, NotCompilable), match=message):
        CompiledModel.from_dict(data)


@pytest.mark.parametrize(
    ("last", "freq"),
    [
        ("2023-01-31 00:00:00", "D"),
        ("2023-01-31 13:45:00", "D"),
        ("2023-01-31 13:00:00", "h"),
        ("2023-01-31 13:30:00", "30min"),
        ("2023-01-31 13:30:17", "s"),
        ("2023-01-31 13:30:00", "min"),
        ("2023-01-31 00:00:00", "2D"),
        ("2023-01-31 13:00:00", "1h"),
        ("2023-01-31 13:07:00", "15min"),
        ("2023-01-31 13:07:00.250", "500ms"),
        ("2023-01-31 00:00:00", "W-SUN"),
        ("2023-01-31 00:00:00", "2W"),  # multiples of anchored weeks go through pandas
        ("2023-01-31 00:00:00", "7D"),
        ("2023-01-29 00:00:00", "W"),  # a Sunday: W's anchor
        ("2023-01-31 08:00:00", "W"),  # a Tuesday: next Sunday
        ("2023-01-31 00:00:00", "W-MON"),
        ("2023-01-31 00:00:00", "W-TUE"),
        ("1969-12-30 00:00:00", "W-WED"),  # before the epoch
        ("2023-01-31 00:00:00", "MS"),
        ("2023-01-15 00:00:00", "ME"),
        ("2023-02-03 00:00:00", "B"),
        ("2023-01-31 00:00:00", "QS"),
    ],
)
def test_future_dates_match_the_pandas_future_frame(last: str, freq: str) -> None:
    for periods in (1, 7, 30):
        expected = future_frame(pd.Timestamp(last), periods, freq)["ds"].to_numpy(dtype="datetime64[ns]")
        got = future_dates(np.datetime64(last), periods, freq)
        assert got.dtype == np.dtype("datetime64[ns]")
        np.testing.assert_array_equal(got, expected, err_msg=f"{last} {freq} {periods}")


def test_future_dates_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="periods"):
        future_dates(np.datetime64("2023-01-01"), 0, "D")
    with pytest.raises(ValueError, match="unknown frequency"):
        future_dates(np.datetime64("2023-01-01"), 3, "fortnightly")


def test_percentile_rows_is_numpy_percentile() -> None:
    rng = np.random.default_rng(3)
    for shape in [(7, 1000), (1, 5), (30, 300), (3, 2)]:
        samples = rng.normal(size=shape)
        for width in (0.8, 0.95, 0.5, 0.999, 0.123):
            percentiles = (100 * (1.0 - width) / 2, 100 * (1.0 + width) / 2)
            got = percentile_rows(samples, percentiles)
            for p, values in zip(percentiles, got, strict=True):
                np.testing.assert_array_equal(values, np.percentile(samples, p, axis=1))
        for p in (0.0, 100.0, 50.0):
            np.testing.assert_array_equal(
                percentile_rows(samples, (p,))[0], np.percentile(samples, p, axis=1)
            )


def test_predict_rejects_empty_dates_and_nat() -> None:
    compiled = compile_model(fitted("daily-defaults"))
    with pytest.raises(ValueError, match="no dates"):
        compiled.predict(np.array([], dtype="datetime64[ns]"))
    with pytest.raises(ValueError, match="NaT"):
        compiled.predict(np.array(["2024-01-01", "NaT"], dtype="datetime64[ns]"))
