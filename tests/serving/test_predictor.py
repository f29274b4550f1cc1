"""The predictor: only future rows, the same numbers as Prophet's own predict, readable load errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fleetcast.model import archive
from fleetcast.serving.errors import ServingError, http_status
from fleetcast.serving.predictor import ProphetPredictor
from fleetcast.serving.protocol import ForecastRequest
from tests.serving.models import prophet_reference


def frame_of(response: dict) -> pd.DataFrame:
    return pd.DataFrame(response["forecast"])


@pytest.mark.parametrize("intervals", [True, False])
@pytest.mark.parametrize(("kind", "period"), [("daily", 7), ("daily", 90), ("hourly", 48)])
def test_served_forecast_equals_prophets_own_predict(models, kind, period, intervals):
    built = models[kind]
    predictor = ProphetPredictor.load(built.model_dir)
    served = frame_of(predictor.forecast(ForecastRequest(period, intervals=intervals)))
    expected = prophet_reference(built.model_dir, period, built.metadata["freq"], intervals)

    assert list(served["ds"]) == [stamp.isoformat() for stamp in expected["ds"]]
    columns = ["yhat", "yhat_lower", "yhat_upper"] if intervals else ["yhat"]
    assert list(served.columns) == ["ds", *columns]
    for column in columns:
        np.testing.assert_allclose(served[column], expected[column], rtol=1e-9, atol=0)
    assert served["yhat"].std() > 0  # a real forecast, not a constant


def test_forecast_rows_start_strictly_after_the_last_observation(models):
    built = models["daily"]
    last = built.history["ds"].max()
    assert pd.Timestamp(built.metadata["end"]) == last
    response = ProphetPredictor.load(built.model_dir).forecast(ForecastRequest(10))
    assert response["customer"] == "7"
    stamps = pd.to_datetime(frame_of(response)["ds"])
    assert len(stamps) == 10
    assert stamps.iloc[0] == last + pd.Timedelta(days=1)
    assert (stamps.diff().dropna() == pd.Timedelta(days=1)).all()


def test_request_freq_overrides_the_model_freq(models):
    built = models["daily"]
    predictor = ProphetPredictor.load(built.model_dir)
    last = pd.Timestamp(built.metadata["end"])
    hourly = pd.to_datetime(frame_of(predictor.forecast(ForecastRequest(30, freq="h")))["ds"])
    assert list(hourly) == list(pd.date_range(last + pd.Timedelta(hours=1), periods=30, freq="h"))
    weekly = pd.to_datetime(frame_of(predictor.forecast(ForecastRequest(3, freq="W")))["ds"])
    assert weekly.iloc[0] > last and (weekly.dt.day_of_week == 6).all()


def test_intervals_bracket_the_point_forecast_and_repeat_exactly(models):
    predictor = ProphetPredictor.load(models["daily"].model_dir)
    first = frame_of(predictor.forecast(ForecastRequest(14)))
    again = frame_of(predictor.forecast(ForecastRequest(14, intervals=True)))
    pd.testing.assert_frame_equal(first, again)
    assert (first["yhat_lower"] < first["yhat"]).all() and (first["yhat"] < first["yhat_upper"]).all()
    point_only = frame_of(predictor.forecast(ForecastRequest(14, intervals=False)))
    np.testing.assert_allclose(point_only["yhat"], first["yhat"], rtol=1e-12)
    assert predictor.model.uncertainty_samples == 1000  # the speed-up switch was restored


def test_model_without_uncertainty_samples_serves_points_and_refuses_intervals(models):
    predictor = ProphetPredictor.load(models["no_intervals"].model_dir)
    assert not predictor.has_intervals
    assert list(frame_of(predictor.forecast(ForecastRequest(3))).columns) == ["ds", "yhat"]
    with pytest.raises(ServingError) as caught:
        predictor.forecast(ForecastRequest(3, intervals=True))
    assert (http_status(caught.value), caught.value.code) == (400, "intervals_unavailable")
    assert '"intervals": false' in caught.value.message


def test_horizon_beyond_pandas_dates_is_a_400(models):
    predictor = ProphetPredictor.load(models["daily"].model_dir)
    with pytest.raises(ServingError) as caught:
        predictor.forecast(ForecastRequest(366, freq="1000YS"))
    assert (http_status(caught.value), caught.value.code) == (400, "bad_period")
    assert "run past the last date" in caught.value.message


def copy_model(models, tmp_path: Path) -> Path:
    target = tmp_path / "copy" / "model"
    shutil.copytree(models["daily"].model_dir, target)
    return target


def rewrite_metadata(model_dir: Path, **changes) -> None:
    path = model_dir / "metadata.json"
    metadata = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            metadata.pop(key, None)
        else:
            metadata[key] = value
    path.write_text(json.dumps(metadata))


def load_error(model_dir: Path) -> ServingError:
    with pytest.raises(ServingError) as caught:
        ProphetPredictor.load(model_dir)
    assert http_status(caught.value) in (400, 404)  # a broken model is the model's fault, never a 5xx
    assert str(model_dir) in caught.value.message
    assert "Traceback" not in caught.value.message
    return caught.value


def test_missing_model_directory(tmp_path):
    error = load_error(tmp_path / "nowhere" / "model")
    assert error.code == "model_missing" and "does not exist" in error.message
    assert http_status(error) == 404


def test_missing_metadata_file(models, tmp_path):
    model_dir = copy_model(models, tmp_path)
    (model_dir / "metadata.json").unlink()
    error = load_error(model_dir)
    assert error.code == "model_invalid" and "missing metadata.json" in error.message


def test_truncated_model_json_fails_its_checksum(models, tmp_path):
    model_dir = copy_model(models, tmp_path)
    text = (model_dir / "model.json").read_text()
    (model_dir / "model.json").write_text(text[: len(text) // 2])
    error = load_error(model_dir)
    assert error.code == "model_invalid" and "checksum" in error.message


def test_metadata_without_the_last_observation(models, tmp_path):
    model_dir = copy_model(models, tmp_path)
    rewrite_metadata(model_dir, end=None)
    assert "lacks end" in load_error(model_dir).message
    rewrite_metadata(model_dir, end="yesterday-ish")
    assert "is not a timestamp" in load_error(model_dir).message


def test_consistent_files_that_are_not_a_prophet_model(models, tmp_path):
    model_dir = copy_model(models, tmp_path)
    junk = json.dumps({"hello": "world"})
    (model_dir / "model.json").write_text(junk)
    rewrite_metadata(model_dir, model_sha256=archive.sha256_text(junk))
    error = load_error(model_dir)
    assert error.code == "model_invalid" and "not a Prophet model" in error.message


def test_concurrent_forecasts_equal_sequential_ones(models):
    """A threaded server gets the same (seeded) intervals as one request at a time."""
    from concurrent.futures import ThreadPoolExecutor

    predictors = [ProphetPredictor.load(models[kind].model_dir) for kind in ("daily", "hourly")]
    requests = [ForecastRequest(5 + i % 3, intervals=i % 2 == 0) for i in range(12)]
    jobs = [(predictors[i % 2], request) for i, request in enumerate(requests)]
    sequential = [predictor.forecast(request) for predictor, request in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda job: job[0].forecast(job[1]), jobs))
    assert concurrent == sequential
