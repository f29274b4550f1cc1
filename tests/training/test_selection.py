"""Per-customer model selection: the candidates, the rolling-origin ranking, and its honesty."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fleetcast.cli import main
from fleetcast.model import archive, blend, composed, prophet_model
from fleetcast.model.baseline import SeasonalNaive
from fleetcast.model.fit import engine
from fleetcast.model.settings import ProphetSettings
from fleetcast.training import selection
from fleetcast.training.config import CANDIDATE_NAMES, ConfigError, JobSettings, parse_hyperparameters
from fleetcast.training.inputs import History
from tests.helpers import write_hyperparameters

BASE = ProphetSettings(uncertainty_samples=0)


def series(days: int, values) -> History:
    ds = pd.date_range("2022-01-01", periods=days, freq="D").to_numpy(dtype="datetime64[ns]")
    return History(ds=ds, y=np.asarray(values, dtype=float))


def seasonal(days: int = 400, seed: int = 1, trend: float = 0.0, multiplicative: bool = False) -> History:
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    level = 300 + trend * t
    shape = 0.3 * np.sin(2 * np.pi * t / 365.25 + 1.0) + 0.1 * np.sin(2 * np.pi * t / 7)
    values = level * (1 + shape) if multiplicative else level + 300 * shape
    return series(days, values + rng.normal(0, 6, days))


def choose(history: History, names=CANDIDATE_NAMES, limit: int = 5) -> selection.Selection:
    candidates = selection.candidate_set(history, BASE, tuple(names), limit)
    return selection.select(history, candidates, folds=3, horizon_days=7, min_rows=30, fit_engine="auto")


def test_every_candidate_is_described():
    assert tuple(selection.DESCRIPTIONS) == CANDIDATE_NAMES


def test_candidates_follow_the_history_and_the_limits():
    year = seasonal(400)
    daily_data = [name for name in CANDIDATE_NAMES if name != "daily-by-day-type"]  # that one: sub-daily
    assert [c.name for c in selection.candidate_set(year, BASE, CANDIDATE_NAMES, 10)] == daily_data
    short = seasonal(200)  # too short for a yearly cycle
    names = [c.name for c in selection.candidate_set(short, BASE, CANDIDATE_NAMES, 10)]
    assert names == ["configured", "weekly-change", "flexible-trend", "multiplicative", "blend", "naive"]
    long = seasonal(800)  # Prophet's own yearly rule applies: no low-order variant
    assert "yearly-low" not in [c.name for c in selection.candidate_set(long, BASE, CANDIDATE_NAMES, 10)]
    # max_candidates bounds the Prophet fits; the blend and the baseline cost none and always stay in.
    limited = selection.candidate_set(year, BASE, CANDIDATE_NAMES, 2)
    assert [c.name for c in limited] == ["configured", "yearly-low", "blend", "naive"]
    assert [c.kind for c in limited] == ["prophet", "prophet", "blend", "seasonal-naive"]
    # The blend needs a Prophet part: asked for alone, it brings the configured model.
    alone = selection.candidate_set(year, BASE, ("blend",), 4)
    assert [c.name for c in alone] == ["configured", "blend"]
    multiplicative = replace(BASE, seasonality_mode="multiplicative")
    names = [c.name for c in selection.candidate_set(year, multiplicative, CANDIDATE_NAMES, 10)]
    assert "multiplicative" not in names
    only = selection.candidate_set(short, BASE, ("yearly-low",), 4)  # asked for, but does not apply
    assert [c.name for c in only] == ["configured"]


def test_the_hyperparameters_spell_the_candidates():
    assert parse_hyperparameters({"selection": "Yearly-Low, multiplicative"}).job.selection == (
        "yearly-low,multiplicative"
    )
    assert selection.wanted_names(JobSettings(selection="off")) == ("configured",)
    assert selection.wanted_names(JobSettings()) == CANDIDATE_NAMES
    with pytest.raises(ConfigError, match="comma list of configured"):
        parse_hyperparameters({"selection": "yearly-high"})
    with pytest.raises(ConfigError, match="max_candidates"):
        parse_hyperparameters({"max_candidates": "0"})


def test_a_year_of_seasons_chooses_the_low_order_yearly_seasonality():
    choice = choose(seasonal(400))
    assert choice.candidate.name == "yearly-low"
    assert choice.scores[choice.candidate.name] < 0.7 * choice.scores["configured"]
    # Every candidate but the baseline is fitted once per fold; the baseline is scored on the same folds.
    # no naive, blend or day types
    assert choice.folds == 3 and choice.fits == 3 * (len(CANDIDATE_NAMES) - 3)
    assert choice.scores["naive"] == choice.naive_score


def test_growing_seasonal_swings_choose_multiplicative_seasonality():
    rng = np.random.default_rng(4)
    t = np.arange(240)
    level = 100 + 2.0 * t  # the level grows fivefold, the weekly swing with it
    history = series(240, level * (1 + 0.4 * np.sin(2 * np.pi * t / 7)) + rng.normal(0, 2, 240))
    choice = choose(history, ("configured", "multiplicative"))
    assert choice.candidate.name == "multiplicative"


def test_a_late_level_change_chooses_the_flexible_trend():
    rng = np.random.default_rng(5)
    t = np.arange(240)
    level = np.where(t < 200, 300.0, 300.0 + 12.0 * (t - 200))  # a new load grows in the last weeks
    history = series(240, level + 20 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 3, 240))
    choice = choose(history, ("configured", "flexible-trend"))
    assert choice.candidate.name == "flexible-trend"
    assert choice.runner_up == "configured"


def test_folds_end_before_the_data_they_are_given_ends():
    history = seasonal(100)
    windows = selection.fold_windows(history, 3, 7, 30)
    assert [test_end for _, test_end in windows] == [100, 93, 86]
    assert [train_end for train_end, _ in windows] == [93, 86, 79]
    assert selection.fold_windows(series(40, np.ones(40)), 3, 7, 30) == [(33, 40)]


def train(root: Path, values_of, **hyperparameters: str) -> dict[str, tuple[str, dict]]:
    channel = root / "input" / "data" / "train"
    for customer, values in values_of.items():
        folder = channel / customer
        folder.mkdir(parents=True, exist_ok=True)
        stamps = pd.date_range("2022-01-01", periods=len(values), freq="D").strftime("%Y-%m-%d")
        pd.DataFrame({"timestamp": stamps, "consumption": np.round(values, 3)}).to_csv(
            folder / "data.csv", index=False
        )
    write_hyperparameters(root, **{"workers": "1", "uncertainty_samples": "0", **hyperparameters})
    assert main(["train"]) == 0
    return {p.name: archive.read_archive(p) for p in sorted((root / "checkpoints").glob("*.tar.gz"))}


@pytest.mark.parametrize("chosen_model", ["yearly-low", "blend"])
def test_the_final_holdout_never_ranks_the_candidates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chosen_model: str
):
    values = (seasonal(400, seed=9) if chosen_model == "yearly-low" else prophet_and_last_week_err_apart()).y
    perturbed = values.copy()
    perturbed[-7:] = perturbed[-7:] * np.linspace(0.2, 3.0, 7)  # only the final holdout changes
    chosen = []
    for name, series_values in (("original", values), ("perturbed", perturbed)):
        root = tmp_path / name
        (root / "input" / "config").mkdir(parents=True)
        monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(root))
        ((_, metadata),) = train(root, {"c": series_values}).values()
        chosen.append(metadata)
    original, changed = chosen
    assert original["model"] == changed["model"] == chosen_model
    assert original.get("blend", {}).get("name") == changed.get("blend", {}).get("name")  # same weighting
    assert original["selection"] == changed["selection"]  # the same CV scores, fold by fold
    assert original["metrics"]["smape"] != changed["metrics"]["smape"]  # the holdout itself did change


def test_selection_off_ships_the_configured_model(sm_root: Path):
    values = seasonal(400, seed=3).y
    ((model_json, metadata),) = train(sm_root, {"c": values}, selection="off").values()
    assert metadata["model"] == "configured" and metadata["selection"]["folds"] == 0
    assert metadata["prophet"] == json.loads(json.dumps(BASE.prophet_kwargs()))  # as metadata.json holds it
    frame = pd.DataFrame({"ds": pd.date_range("2022-01-01", periods=400, freq="D"), "y": np.round(values, 3)})
    future = pd.Series(pd.date_range("2023-02-05", periods=14, freq="D"))
    shipped = prophet_model.predict_values(prophet_model.model_from_json(model_json), future)
    # A cold fit reaches the same certified optimum (the shipped one was warm-started from the holdout fit).
    np.testing.assert_allclose(shipped, engine.forecast_values(engine.fit(frame, BASE), future), rtol=1e-6)


def test_the_shipped_model_is_the_chosen_candidate_refitted_on_everything(sm_root: Path):
    values = seasonal(400, seed=2).y
    ((model_json, metadata),) = train(sm_root, {"c": values}, max_candidates="3").values()
    first_three = ["configured", "yearly-low", "weekly-change"]  # the three that apply to daily data
    assert metadata["model"] in [*first_three, "blend"]
    assert set(metadata["selection"]["cv_smape"]) == {*first_three, "blend", "naive"}
    kinds = {"blend": "blend", "weekly-change": "seasonal-change"}
    assert metadata["kind"] == kinds.get(metadata["model"], "prophet")
    model = prophet_model.model_from_json(model_json)  # a blend's model.json is its Prophet part
    # (a seasonal change's is Prophet fitted on the changes: all but the first week)
    assert len(model.history) == (400 - 7 if metadata["model"] == "weekly-change" else 400)
    assert model.seasonality_mode == metadata["prophet"]["seasonality_mode"]
    assert model.yearly_seasonality == metadata["prophet"]["yearly_seasonality"]


def weekly_repeat(days: int = 120, seed: int = 7) -> np.ndarray:
    """A sharp weekly pattern whose shape wanders from week to week (each weekday a random walk), plus a
    little noise: Prophet's one weekly shape averages the weeks; last week's value follows them. (The
    weekly-change candidate is last week's value plus a forecast change: on a seed whose random walks
    happen to drift alike, such as 6, it can follow that drift and score a few % better in
    cross-validation; this seed's do not.)"""
    rng = np.random.default_rng(seed)
    weeks = days // 7 + 1
    shape = np.array([100.0, 100.0, 480.0, 100.0, 100.0, 5.0, 100.0]) + np.cumsum(
        rng.normal(0, 25, (weeks, 7)), axis=0
    )
    return np.abs(shape.reshape(-1)[:days] + 300) + rng.normal(0, 1, days)


def test_a_series_that_repeats_every_week_chooses_the_baseline():
    choice = choose(series(120, weekly_repeat()))
    assert choice.candidate.name == "naive" and choice.candidate.is_baseline
    # Prophet on the values; weekly-change is last week's value plus a change, close to naive by design.
    prophet = [v for k, v in choice.scores.items() if k not in ("naive", "blend", "weekly-change")]
    assert choice.scores["naive"] < 0.7 * min(prophet)
    assert choice.scores["naive"] < choice.scores["weekly-change"]
    assert choice.scores["naive"] < choice.scores["blend"]  # no weighting of Prophet helps here


def test_a_baseline_customer_ships_and_serves_a_seasonal_naive_archive(sm_root: Path):
    from fleetcast.serving.predictors import load_model
    from fleetcast.serving.protocol import ForecastRequest
    from tests.serving.models import extract

    values = weekly_repeat()
    archives = train(sm_root, {"c": values}, uncertainty_samples="100", interval_width="0.9")
    ((model_json, metadata),) = archives.values()
    assert metadata["model"] == "naive" and metadata["kind"] == "seasonal-naive"
    assert metadata["fit_engine"] == "seasonal-naive"
    # The holdout of the baseline is the baseline's own score: never worse than naive.
    assert metadata["metrics"]["smape"] == metadata["metrics"]["naive_smape"]
    model = SeasonalNaive.from_json(model_json)
    assert model.intervals and model.interval_width == 0.9 and model.freq == "D"
    predictor = load_model(
        extract(sm_root / "checkpoints" / "c.tar.gz", sm_root / "served" / "model")
    ).predictor
    rows = predictor.forecast(ForecastRequest(7))["forecast"]
    assert [row["yhat"] for row in rows] == pytest.approx(np.round(values[-7:], 3).tolist())
    assert all(row["yhat_lower"] < row["yhat"] < row["yhat_upper"] for row in rows)
    report = (sm_root / "output" / "data" / "report-algo-1.csv").read_text()
    assert ",naive," in report and "seasonal-naive" in report


def test_the_baseline_alone_can_be_asked_for(sm_root: Path):
    assert parse_hyperparameters({"selection": "naive"}).job.selection == "naive"
    ((_, metadata),) = train(sm_root, {"c": seasonal(120).y}, selection="naive").values()
    assert metadata["model"] == "naive" and metadata["selection"]["folds"] == 0


def half_hourly_load(days: int = 56, seed: int = 8) -> History:
    """Working days peak in the morning and afternoon; weekends have a low, late, flat curve."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2023-01-02", periods=48 * days, freq="30min")
    hour = ds.hour.to_numpy() + ds.minute.to_numpy() / 60
    weekend = ds.day_of_week.to_numpy() >= 5
    working = 40 * np.exp(-((hour - 9) ** 2) / 4) + 30 * np.exp(-((hour - 15) ** 2) / 6)
    resting = 12 * np.exp(-((hour - 13) ** 2) / 12)
    values = 50 + np.where(weekend, resting, working) + rng.normal(0, 1.5, len(ds))
    return History(ds=ds.to_numpy(dtype="datetime64[ns]"), y=values)


def test_sub_daily_load_with_weekend_shapes_chooses_daily_by_day_type():
    history = half_hourly_load()
    names = [c.name for c in selection.candidate_set(history, BASE, CANDIDATE_NAMES, 10)]
    assert names[:2] == ["configured", "daily-by-day-type"]
    choice = choose(history, ("configured", "daily-by-day-type"))
    assert choice.candidate.name == "daily-by-day-type"
    assert choice.candidate.settings.daily_by_day_type
    assert choice.scores["daily-by-day-type"] < 0.7 * choice.scores["configured"]
    # Not offered where it cannot apply: daily data, under two weeks, daily seasonality switched off.
    short = History(ds=history.ds[: 48 * 10], y=history.y[: 48 * 10])
    no_daily = replace(BASE, daily_seasonality=False)
    for data, base in ((seasonal(100), BASE), (short, BASE), (history, no_daily)):
        assert "daily-by-day-type" not in [
            c.name for c in selection.candidate_set(data, base, CANDIDATE_NAMES, 10)
        ]


def test_the_day_type_hyperparameter_is_parsed_and_shipped_in_stock_prophet_json():
    settings = parse_hyperparameters({"daily_by_day_type": "True", "daily_seasonality": "6"}).prophet
    assert settings.daily_by_day_type and settings.constructor_kwargs()["daily_seasonality"] is False
    with pytest.raises(ConfigError, match="daily_by_day_type"):
        parse_hyperparameters({"daily_by_day_type": "sometimes"})
    history = half_hourly_load(days=21)
    outcome = engine.fit_series(history.ds, history.y, settings)
    assert outcome.engine_used == engine.EXACT
    model = prophet_model.model_from_json(outcome.to_json())  # stock Prophet loads it unchanged
    assert {name: props["fourier_order"] for name, props in model.seasonalities.items()} == {
        "daily_weekday": 6,
        "daily_weekend": 6,
        "weekly": 3,
    }
    assert list(model.history.columns) == ["ds", "y", "weekday", "weekend", "floor", "t", "y_scaled"]


def prophet_and_last_week_err_apart(days: int = 200, seed: int = 2) -> History:
    """A smooth trend and weekly swing (Prophet's part) plus a weekly shape that wanders from week to week
    (which last week's value follows and Prophet averages away) plus noise (which last week's value
    repeats): each forecast errs where the other does not."""
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    smooth = 300 + 0.5 * t + 40 * np.sin(2 * np.pi * t / 7)
    wander = np.cumsum(rng.normal(0, 5, (days // 7 + 1, 7)), axis=0).reshape(-1)[:days]
    return series(days, smooth + wander + rng.normal(0, 10, days))


def test_forecasts_that_err_apart_choose_the_blend_of_them():
    history = prophet_and_last_week_err_apart()
    choice = choose(history)
    candidate = choice.candidate
    assert candidate.name == "blend" and candidate.is_blend and candidate.weights in blend.WEIGHTS
    prophet = {k: v for k, v in choice.scores.items() if k not in ("naive", "blend")}
    # Its Prophet part is the best-scoring Prophet candidate, with that candidate's settings.
    assert candidate.prophet_part == min(prophet, key=prophet.__getitem__)
    offered = {c.name: c.settings for c in selection.candidate_set(history, BASE, CANDIDATE_NAMES, 5)}
    assert candidate.settings == offered[candidate.prophet_part]
    assert choice.scores["blend"] < 0.95 * min(choice.scores["naive"], *prophet.values())
    # The blend costs no fit: every Prophet candidate is fitted once per fold, nothing more.
    assert choice.fits == choice.folds * len(prophet)
    # Asked for without the baseline or other Prophet candidates, it still blends with last week's values.
    alone = choose(prophet_and_last_week_err_apart(), ("blend",))
    assert alone.candidate.name == "blend" and alone.candidate.prophet_part == "configured"


def blend_option(weights: blend.Weights) -> selection.Candidate:
    return selection.Candidate("blend", BASE, archive.BLEND_KIND, weights, "configured")


def test_a_near_tie_goes_to_the_option_leaning_least_on_prophet():
    prophet = selection.Candidate("configured", BASE)
    naive = selection.Candidate("naive", BASE, archive.BASELINE_KIND)
    quarter, half = (next(w for w in blend.WEIGHTS if w.prophet_weight == v) for v in (0.25, 0.5))
    tolerance = selection.PARSIMONY_TOLERANCE
    assert [selection.lean(c) for c in (naive, blend_option(quarter), blend_option(half), prophet)] == [
        0.0,
        0.25,
        0.5,
        1.0,
    ]

    def choose_among(*scored):
        return selection._parsimonious_choice(list(scored))

    # Within the tolerance of the best: the option nearest seasonal-naive, with its own score.
    inside = 1.0 + tolerance * 0.9
    assert choose_among((prophet, 1.0), (blend_option(half), inside), (naive, 1.0 + tolerance * 2)) == (
        blend_option(half),
        inside,
    )
    assert choose_among((prophet, 1.0), (blend_option(half), inside), (blend_option(quarter), inside))[
        0
    ] == blend_option(quarter)
    assert choose_among((prophet, 1.0), (naive, inside))[0] == naive
    # Past it, the lowest score; among equal leans, the lower score; unscored options never win.
    outside = 1.0 + tolerance * 1.1
    assert choose_among((prophet, 1.0), (blend_option(half), outside), (naive, outside))[0] == prophet
    other = selection.Candidate("flexible-trend", BASE)
    assert choose_among((prophet, 1.01), (other, 1.0), (naive, float("nan")))[0] == other


def test_a_series_prophet_forecasts_far_better_still_ships_prophet():
    choice = choose(seasonal(400))
    best = min(choice.scores, key=choice.scores.__getitem__)
    assert not choice.candidate.is_blend and not choice.candidate.is_baseline
    assert choice.scores[choice.candidate.name] == choice.scores[best]
    # Every option nearer seasonal-naive (the baseline, the blend at its best weighting) is clearly worse.
    nearer_naive = (choice.scores["naive"], choice.scores["blend"])
    assert min(nearer_naive) > choice.scores[best] * (1 + selection.PARSIMONY_TOLERANCE)


def test_a_blend_customer_ships_stock_prophet_json_and_serves_the_blend(sm_root: Path):
    from fleetcast.serving.composed_predictor import ComposedPredictor
    from fleetcast.serving.predictors import load_model
    from fleetcast.serving.protocol import ForecastRequest
    from tests.serving.models import extract

    values = prophet_and_last_week_err_apart().y
    archives = train(sm_root, {"c": values}, uncertainty_samples="100")
    ((model_json, metadata),) = archives.values()
    assert metadata["model"] == "blend" and metadata["kind"] == "blend"
    shipped = composed.from_metadata(metadata)
    assert (shipped.prophet_weight, shipped.season_weights) in [
        (w.prophet_weight, w.season_weights) for w in blend.WEIGHTS
    ]
    assert metadata["selection"]["blend_of"] in metadata["selection"]["cv_smape"]
    model = prophet_model.model_from_json(model_json)  # model.json: the Prophet part, stock Prophet JSON
    assert len(model.history) == len(values)
    served = load_model(extract(sm_root / "checkpoints" / "c.tar.gz", sm_root / "served" / "model"))
    assert isinstance(served.predictor, ComposedPredictor)
    rows = served.predictor.forecast(ForecastRequest(7))["forecast"]
    future = pd.Series(pd.date_range(pd.Timestamp(metadata["end"]), periods=8, freq="D")[1:])
    prophet_part = prophet_model.predict_values(model, future)
    weeks = np.round(values, 3).reshape(-1)[-7 * len(shipped.season_weights) :].reshape(-1, 7)[::-1]
    seasonal = np.asarray(shipped.season_weights) @ weeks  # week 1 back first
    expected = shipped.prophet_weight * prophet_part + (1 - shipped.prophet_weight) * seasonal
    np.testing.assert_allclose([row["yhat"] for row in rows], expected, rtol=1e-9)
    assert all(row["yhat_lower"] < row["yhat"] < row["yhat_upper"] for row in rows)


def weekly_shape_that_grows(days: int = 150, seed: int = 0) -> History:
    """A level that wanders (a random walk) and a weekly shape whose swing grows by the same amount every
    week: Prophet's one weekly shape on the values averages the swings, last week's values lag one week
    of growth, and the week-over-week change (the growth, by weekday) is steady."""
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    level = 300 + np.cumsum(rng.normal(0, 1.0, days))
    shape = np.array([0, 1, 0.5, 0.8, 0.3, -1.5, -1.2])[t % 7]
    return series(days, level + (20 + 1.0 * t) * shape + rng.normal(0, 1, days))


def test_a_weekly_shape_that_changes_steadily_chooses_the_weekly_change():
    choice = choose(weekly_shape_that_grows())
    assert choice.candidate.name == "weekly-change" and choice.candidate.is_change
    others = [score for name, score in choice.scores.items() if name != "weekly-change"]
    assert choice.scores["weekly-change"] < 0.5 * min(others)
    # Its Prophet part keeps only what repeats every week.
    part = choice.candidate.settings
    assert part.growth == "flat" and part.yearly_seasonality is False


def test_a_weekly_change_customer_ships_its_prophet_part_and_serves_last_week_plus_the_change(sm_root: Path):
    from fleetcast.serving.composed_predictor import ComposedPredictor
    from fleetcast.serving.predictors import load_model
    from fleetcast.serving.protocol import ForecastRequest
    from tests.serving.models import extract

    values = weekly_shape_that_grows().y
    ((model_json, metadata),) = train(sm_root, {"c": values}, uncertainty_samples="100").values()
    assert metadata["model"] == "weekly-change" and metadata["kind"] == archive.CHANGE_KIND
    assert metadata["metrics"]["smape"] < metadata["metrics"]["naive_smape"]
    model = prophet_model.model_from_json(model_json)  # stock Prophet JSON, fitted on the changes
    rounded = np.round(values, 3)
    np.testing.assert_allclose(model.history["y"], rounded[7:] - rounded[:-7], atol=1e-9)
    served = load_model(extract(sm_root / "checkpoints" / "c.tar.gz", sm_root / "served" / "model"))
    assert isinstance(served.predictor, ComposedPredictor)
    rows = served.predictor.forecast(ForecastRequest(14))["forecast"]
    future = pd.Series(pd.date_range(pd.Timestamp(metadata["end"]), periods=15, freq="D")[1:])
    change = prophet_model.predict_values(model, future)
    weeks_ahead = np.repeat([1, 2], 7)
    expected = np.tile(rounded[-7:], 2) + weeks_ahead * change
    np.testing.assert_allclose([row["yhat"] for row in rows], expected, rtol=1e-9)
    assert all(row["yhat_lower"] < row["yhat"] < row["yhat_upper"] for row in rows)
