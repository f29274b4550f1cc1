"""Holidays and regressors through `train`: every input layout carries the columns, bad values are bad rows,
an absent column is named, and holdout scoring and selection forecast with the real future values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fleetcast.cli import main
from fleetcast.data.generate import driver_series
from fleetcast.model import archive, prophet_model
from fleetcast.model.fit import engine
from fleetcast.model.settings import ProphetSettings, Regressor
from fleetcast.training import evaluate, selection
from fleetcast.training.inputs import (
    CustomerTask,
    MissingColumnError,
    clean_history,
    iter_bucket_tasks,
    load_task_rows,
    read_customer_file,
)
from tests.helpers import write_hyperparameters

# Two years, so the holdout's Christmas was seen in training; the last 7 days hold Christmas 2022.
GRID = pd.date_range("2021-01-01", "2023-01-01", freq="D", inclusive="left")


def customer_frame(customer: int, rows: int = len(GRID)) -> pd.DataFrame:
    stamps, values, temperature = driver_series(customer, 11, GRID, rows, "US")
    return pd.DataFrame(
        {"timestamp": stamps.strftime("%Y-%m-%d"), "consumption": values.round(3), "temperature": temperature}
    )


def test_the_three_layouts_carry_regressor_columns(tmp_path: Path):
    frame = customer_frame(0, 200)
    folder = tmp_path / "folder" / "0" / "data.csv"
    folder.parent.mkdir(parents=True)
    frame.to_csv(folder, index=False)
    flat = tmp_path / "0.csv"
    frame.to_csv(flat, index=False, header=False)  # no header: regressors follow the value, in order
    bucket = tmp_path / "part-0.csv"
    frame.assign(customer_id="0")[["customer_id", "timestamp", "consumption", "temperature"]].to_csv(
        bucket, index=False
    )
    expected = frame["temperature"].to_numpy()
    for path in (folder, flat):
        rows = read_customer_file(path, regressors=("temperature",))
        np.testing.assert_array_equal(rows.regressors["temperature"], expected)
        np.testing.assert_array_equal(rows.y, frame["consumption"].to_numpy())
    (task,) = iter_bucket_tasks(bucket, ("temperature",))
    np.testing.assert_array_equal(load_task_rows(task).regressors["temperature"], expected)
    # Without regressors configured the extra column is ignored (the fast path reads the rows).
    assert read_customer_file(folder).regressors == {}


def test_a_missing_regressor_value_is_a_bad_row_counted_and_dropped(tmp_path: Path):
    frame = customer_frame(1, 100).astype({"temperature": object})
    frame.loc[[5, 6], "temperature"] = ""
    frame.loc[9, "temperature"] = "warm"
    path = tmp_path / "1" / "data.csv"
    path.parent.mkdir()
    frame.to_csv(path, index=False)
    task = CustomerTask(customer="1", path=path, regressors=("temperature",))
    history, dropped = clean_history(load_task_rows(task))
    assert dropped == 3 and len(history) == 97
    assert np.all(np.isfinite(history.regressors["temperature"]))
    assert history.window(10, 20).regressors["temperature"].shape == (10,)


def test_an_absent_regressor_column_is_an_error_naming_it(tmp_path: Path):
    frame = customer_frame(2, 50)
    path = tmp_path / "data.csv"
    frame.drop(columns="temperature").to_csv(path, index=False)
    with pytest.raises(
        MissingColumnError, match=r"no column 'temperature' \(columns: timestamp, consumption\)"
    ):
        read_customer_file(path, regressors=("temperature",))
    bucket = tmp_path / "part-0.csv"
    frame.assign(customer_id="2")[["customer_id", "timestamp", "consumption"]].to_csv(bucket, index=False)
    with pytest.raises(MissingColumnError, match="'humidity'"):
        list(iter_bucket_tasks(bucket, ("humidity",)))
    headerless = tmp_path / "2.csv"
    frame.drop(columns="temperature").to_csv(headerless, index=False, header=False)
    with pytest.raises(MissingColumnError, match="'temperature'"):
        read_customer_file(headerless, regressors=("temperature",))


def test_the_hyperparameters_are_parsed_and_refused_with_reasons(sm_root: Path):
    from fleetcast.training.config import ConfigError, parse_hyperparameters

    config = parse_hyperparameters(
        {
            "country_holidays": "DE",
            "holidays_prior_scale": "2.5",
            "regressors": "temperature, humidity:multiplicative",
            "regressor_prior_scale": "0.5",
        }
    )
    assert config.prophet.country_holidays == "DE"
    assert config.prophet.regressors == (Regressor("temperature"), Regressor("humidity", "multiplicative"))
    assert (config.prophet.holidays_prior_scale, config.prophet.regressor_prior_scale) == (2.5, 0.5)
    for key, value, reason in [
        ("country_holidays", "XX", "has a calendar for .*'XX' is not"),
        ("regressors", "temperature:sideways", "not 'sideways'"),
        ("regressors", "trend", "Prophet reserves"),
        ("regressors", "a,a", "listed once"),
        ("regressors", "outside temp", "letters, digits"),
        ("holidays_prior_scale", "0", "must be in"),
    ]:
        with pytest.raises(ConfigError, match=reason):
            parse_hyperparameters({key: value})


def _train(root: Path, customers: range, **hyperparameters: str) -> dict[str, tuple[str, dict]]:
    channel = root / "input" / "data" / "train"
    channel.mkdir(parents=True)
    parts = [customer_frame(c).assign(customer_id=str(c)) for c in customers]
    columns = ["customer_id", "timestamp", "consumption", "temperature"]
    pd.concat(parts)[columns].to_csv(channel / "part-00000.csv", index=False)
    write_hyperparameters(root, workers="1", uncertainty_samples="0", **hyperparameters)
    assert main(["train"]) == 0
    return {p.name: archive.read_archive(p) for p in sorted((root / "checkpoints").glob("*.tar.gz"))}


def test_train_fits_holidays_and_temperature_exactly_and_scores_with_real_temperatures(sm_root: Path):
    archives = _train(sm_root, range(2), country_holidays="US", regressors="temperature", selection="off")
    settings = ProphetSettings(
        uncertainty_samples=0, country_holidays="US", regressors=(Regressor("temperature"),)
    )
    for name, (model_json, metadata) in archives.items():
        assert metadata["fit_engine"] == engine.EXACT, metadata.get("fit_fallback_reason")
        assert metadata["regressors"] == ["temperature"]
        assert metadata["prophet"]["country_holidays"] == "US"
        model = prophet_model.model_from_json(model_json)
        assert "Christmas Day" in list(model.train_holiday_names)
        assert list(model.extra_regressors) == ["temperature"]
        # The holdout score is stock predict's, on the same fit, given the temperatures that happened.
        frame = customer_frame(int(name.split(".")[0]))
        history = frame.rename(columns={"timestamp": "ds", "consumption": "y"}).assign(
            ds=lambda f: pd.to_datetime(f["ds"])
        )
        train, holdout = history.iloc[:-7], history.iloc[-7:]
        fitted = engine.fit(train, settings).model
        actual = holdout["y"].to_numpy()
        real = {"temperature": holdout["temperature"].to_numpy()}
        forecast = prophet_model.predict_values(fitted, holdout["ds"], real)
        assert metadata["metrics"]["smape"] == pytest.approx(evaluate.smape(actual, forecast), abs=2e-6)
        other = prophet_model.predict_values(fitted, holdout["ds"], {"temperature": real["temperature"] + 5})
        assert abs(evaluate.smape(actual, other) - metadata["metrics"]["smape"]) > 0.1


def test_selection_folds_forecast_with_the_folds_real_regressor_values():
    frame = customer_frame(3)
    ds = pd.to_datetime(frame["timestamp"]).to_numpy(dtype="datetime64[ns]")
    from fleetcast.training.inputs import History

    history = History(
        ds=ds, y=frame["consumption"].to_numpy(), regressors={"temperature": frame["temperature"].to_numpy()}
    )
    base = ProphetSettings(uncertainty_samples=0, regressors=(Regressor("temperature"),))
    candidates = selection.candidate_set(history, base, ("configured", "flexible-trend"), 4)
    chosen = selection.select(history, candidates, folds=2, horizon_days=7, min_rows=30, fit_engine="auto")
    # The same folds scored by hand with the fold's real temperatures.
    for train_end, test_end in selection.fold_windows(history, 2, 7, 30)[:1]:
        train, test = history.window(0, train_end), history.window(train_end, test_end)
        outcome = engine.fit_series(train.ds, train.y, base, regressors=train.regressors)
        score = evaluate.smape(test.y, engine.forecast_values(outcome, test.ds, test.regressors))
        assert np.isfinite(score)
    assert chosen.folds == 2 and all(np.isfinite(v) for v in chosen.scores.values())
    # Without the fold's values the forecast cannot be made: the regressors really are passed.
    outcome = engine.fit_series(train.ds, train.y, base, regressors=train.regressors)
    with pytest.raises(ValueError, match="temperature"):
        engine.forecast_values(outcome, test.ds)


@pytest.mark.parametrize("layout", [[], ["--buckets", "2"]])
def test_generate_split_train_serve_end_to_end(sm_root: Path, tmp_path: Path, layout: list[str]):
    """`generate --drivers` -> `split` (folders or buckets keep the temperature) -> `train` -> a forecast."""
    import json

    from fleetcast.serving.predictors import load_model
    from fleetcast.serving.protocol import parse_request
    from fleetcast.serving.safe_tar import safe_extract

    raw = tmp_path / "raw" / "fleet.csv"
    assert main(["generate", "--drivers", "--customers", "3", "--out", str(raw)]) == 0
    channel = sm_root / "input" / "data" / "train"
    assert main(["split", "--input", str(raw.parent), "--out", str(channel), *layout]) == 0
    write_hyperparameters(
        sm_root, workers="1", country_holidays="US", regressors="temperature", selection="off"
    )
    assert main(["train"]) == 0
    archives = sorted((sm_root / "checkpoints").glob("*.tar.gz"))
    assert len(archives) == 3
    for path in archives:
        _, metadata = archive.read_archive(path)
        assert metadata["fit_engine"] == engine.EXACT and metadata["regressors"] == ["temperature"]
    model_dir = tmp_path / "served"
    safe_extract(archives[0], model_dir)
    predictor = load_model(model_dir).predictor
    body = json.dumps({"period": 3, "regressors": {"temperature": [4.1, 3.8, 5.0]}})
    answer = predictor.forecast(parse_request(body, "application/json"))
    assert len(answer["forecast"]) == 3 and "yhat_upper" in answer["forecast"][0]
