"""A seasonal-change archive is served like any Prophet model: the factory, both real servers, plot, batch.

Every answer is compared with one computed without fleetcast's predictors: Prophet's own predict on the
archive's model.json (the week-over-week change, seeded as the servers seed it), added by hand to the
history's value k weeks back, k times; bounds sqrt(k) times as far from it as Prophet's are from its
change. So no path can drop the seasonal part, the intervals, or answer with the change alone.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from fleetcast.model import archive, seasonal_change
from fleetcast.serving.composed_predictor import ComposedPredictor
from fleetcast.serving.errors import ServingError, http_status
from fleetcast.serving.predictors import from_document, load_model
from fleetcast.serving.protocol import ForecastRequest
from tests.serving.models import BuiltModel, build_model, daily_history, extract, prophet_reference
from tests.serving.test_blend_serving import assert_same
from tests.support.servers import JSON_HEADERS, Server

WEEK = pd.Timedelta(days=7)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuiltModel:
    root = tmp_path_factory.mktemp("change-models")
    return build_model(root, "41", daily_history(41), kind=archive.CHANGE_KIND)


def expected(built: BuiltModel, period: int, intervals: bool = True) -> dict:
    reference = prophet_reference(built.model_dir, period, "D", intervals)
    history = built.history.set_index("ds")["y"]
    last = history.index[-1]
    rows = []
    for i, ds in enumerate(reference["ds"]):
        k = -((last - ds) // WEEK)  # ceil((ds - last) / week)
        change = reference["yhat"][i]
        row = {"ds": ds.isoformat(), "yhat": history[ds - k * WEEK] + k * change}
        if intervals:
            for bound in ("yhat_lower", "yhat_upper"):
                row[bound] = row["yhat"] + np.sqrt(k) * (reference[bound][i] - change)
        rows.append(row)
    return {"customer": built.customer, "forecast": rows}


def test_the_factory_serves_the_seasonal_change_kind(built: BuiltModel):
    assert built.metadata["kind"] == archive.CHANGE_KIND
    loaded = load_model(built.model_dir)
    assert isinstance(loaded.predictor, ComposedPredictor)
    assert loaded.document["composed_kind"] == archive.CHANGE_KIND
    assert loaded.compiled  # its Prophet part loads through the compiled predictor
    rebuilt = from_document(json.loads(json.dumps(loaded.document)))  # what another lean worker holds
    # 17 days: the last three reach three weeks ahead.
    for request, answer in [
        (ForecastRequest(17), expected(built, 17)),
        (ForecastRequest(3, intervals=False), expected(built, 3, intervals=False)),
    ]:
        assert_same(loaded.predictor.forecast(request), answer)
        assert rebuilt.forecast(request) == loaded.predictor.forecast(request)
    rows = loaded.predictor.forecast(ForecastRequest(17))["forecast"]
    assert all(row["yhat_lower"] < row["yhat"] < row["yhat_upper"] for row in rows)


def test_a_bad_seasonal_change_is_a_clear_load_error(built: BuiltModel, tmp_path: Path):
    broken = tmp_path / "broken"
    shutil.copytree(built.model_dir, broken)
    metadata = json.loads((broken / "metadata.json").read_text())
    metadata[seasonal_change.CHANGE_KEY]["seasonal"]["values"] = "none"
    (broken / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ServingError, match="not a seasonal-change model: its seasonal part") as caught:
        load_model(broken)
    assert http_status(caught.value) == 400 and caught.value.code == "model_invalid"
    del metadata[seasonal_change.CHANGE_KEY]
    (broken / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ServingError, match=r"metadata\.json lacks 'seasonal_change'"):
        load_model(broken)


def test_the_mms_handler_loads_the_seasonal_change_through_the_factory(built: BuiltModel):
    """MMS's own Python side (its model loader and context), no Java."""
    from tests.serving.test_mms_handler import load_service

    handler = load_service(built.model_dir, "change")._entry_point.__self__
    assert isinstance(handler.predictor, ComposedPredictor) and handler.load_error is None


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_seasonal_change_archive_round_trips_through_the_server_with_intervals(
    server: Server, built: BuiltModel, tmp_path: Path
):
    # As the platform does: the archive training wrote, extracted under the models folder.
    model_dir = extract(built.archive, tmp_path / "models" / "opaque-change" / "model")
    loaded = server.load("opaque-change", model_dir)
    assert loaded.status_code == 200, loaded.text
    for body, answer in [
        ({"period": 10}, expected(built, 10)),
        ({"period": 4, "intervals": False}, expected(built, 4, intervals=False)),
    ]:
        answered = server.invoke("opaque-change", json.dumps(body), JSON_HEADERS)
        assert answered.status_code == 200, answered.text
        assert answered.headers["Content-Type"].startswith("application/json")
        assert_same(answered.json(), answer)
    refused = server.invoke("opaque-change", json.dumps({"period": 0}), JSON_HEADERS)
    assert refused.status_code == 400 and refused.json()["error"] == "bad_period"
    assert requests.delete(f"{server.url}/models/opaque-change", timeout=30).status_code == 200


def test_plot_and_the_batch_forecast_draw_the_seasonal_change(built: BuiltModel):
    from fleetcast.forecast.predict import forecast_archive, forecast_model
    from fleetcast.plot import forecast_from_model, history_from_model

    answer = expected(built, 10)["forecast"]
    model_json, metadata = archive.read_archive(built.archive)
    drawn = forecast_from_model(model_json, metadata, 10)
    np.testing.assert_allclose(drawn["yhat"], [row["yhat"] for row in answer], rtol=1e-9)
    # (plot calls Prophet's predict unseeded: its bands are drawn afresh, so only their place is checked)
    assert np.all(drawn["yhat_lower"] < drawn["yhat"]) and np.all(drawn["yhat"] < drawn["yhat_upper"])
    # The history drawn is values, not changes: the model's last week of them.
    shown = history_from_model(model_json, metadata)
    tail = built.history[built.history["ds"] >= built.history["ds"].iloc[-1] - WEEK]
    np.testing.assert_allclose(shown["y"].to_numpy()[-len(tail) :], tail["y"].to_numpy(), rtol=1e-12)
    # From the archive's compiled.json (its Prophet part's), and from model.json as an archive without it.
    batch = forecast_archive(built.archive, 10)
    assert batch.model == "weekly-change" and batch.source == archive.COMPILED_FILE
    from_json = forecast_model(model_json, metadata, 10, built.archive)
    assert from_json.source == archive.MODEL_FILE
    for forecast in (batch, from_json):
        for column in ("yhat", "yhat_lower", "yhat_upper"):
            np.testing.assert_allclose(getattr(forecast, column), [row[column] for row in answer], rtol=1e-9)
