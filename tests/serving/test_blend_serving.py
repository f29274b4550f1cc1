"""A blend archive is served like any Prophet model: the factory, both real servers, plot, batch forecast.

Every answer is compared with one computed without fleetcast's predictors: Prophet's own predict on the
archive's model.json (seeded as the servers seed it), blended by hand with the history's values whole
weeks back at the blend's weights; so no path can drop the seasonal part, the intervals, or answer from
the Prophet part alone.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from fleetcast.model import archive, blend, composed
from fleetcast.serving.composed_predictor import ComposedPredictor
from fleetcast.serving.errors import ServingError, http_status
from fleetcast.serving.predictors import from_document, load_model
from fleetcast.serving.protocol import ForecastRequest
from tests.serving.models import BuiltModel, build_model, daily_history, extract, prophet_reference
from tests.support.servers import JSON_HEADERS, Server

WEEK = pd.Timedelta(days=7)
THIRDS = next(w for w in blend.WEIGHTS if w.name == "thirds-4-weeks")  # reaches back several weeks
HALF = next(w for w in blend.WEIGHTS if w.prophet_weight == 0.5 and w.seasons == 1)


@pytest.fixture(scope="module")
def blends(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BuiltModel]:
    root = tmp_path_factory.mktemp("blend-models")
    return {
        "thirds": build_model(root, "31", daily_history(31), weights=THIRDS),
        "half": build_model(root, "32", daily_history(32), weights=HALF),
    }


def expected(built: BuiltModel, weights: blend.Weights, period: int, intervals: bool = True) -> dict:
    """Prophet's own forecast blended by hand: w x Prophet + (1 - w) x sum_j a_j x (the value j + k weeks
    back), k the whole weeks that reach back into the history; bounds blended likewise."""
    reference = prophet_reference(built.model_dir, period, "D", intervals)
    history = built.history.set_index("ds")["y"]
    last = history.index[-1]
    seasonal_part = composed.from_metadata(built.metadata).seasonal
    rows = []
    for i, ds in enumerate(reference["ds"]):
        weeks_back = -((last - ds) // WEEK)  # ceil((ds - last) / week)
        lagged = sum(a * history[ds - (weeks_back + j) * WEEK] for j, a in enumerate(weights.season_weights))
        w = weights.prophet_weight
        row = {"ds": ds.isoformat(), "yhat": w * reference["yhat"][i] + (1 - w) * lagged}
        if intervals:
            widen = np.sqrt(weeks_back)
            for bound, residual in (
                ("yhat_lower", seasonal_part.residual_lower),
                ("yhat_upper", seasonal_part.residual_upper),
            ):
                row[bound] = w * reference[bound][i] + (1 - w) * (lagged + residual * widen)
        rows.append(row)
    return {"customer": built.customer, "forecast": rows}


def assert_same(answer: dict, wanted: dict) -> None:
    assert answer["customer"] == wanted["customer"]
    assert [row["ds"] for row in answer["forecast"]] == [row["ds"] for row in wanted["forecast"]]
    for column in wanted["forecast"][0]:
        if column != "ds":
            np.testing.assert_allclose(
                [row[column] for row in answer["forecast"]],
                [row[column] for row in wanted["forecast"]],
                rtol=1e-9,
            )


def test_the_factory_serves_the_blend_kind(blends: dict[str, BuiltModel]):
    for name, weights in (("thirds", THIRDS), ("half", HALF)):
        built = blends[name]
        assert built.metadata["kind"] == archive.BLEND_KIND
        loaded = load_model(built.model_dir)
        assert isinstance(loaded.predictor, ComposedPredictor) and loaded.document["composed_kind"] == "blend"
        assert loaded.compiled  # its Prophet part loads through the compiled predictor
        rebuilt = from_document(json.loads(json.dumps(loaded.document)))  # what another lean worker holds
        # 10 days: the last three reach two weeks back.
        for request, answer in [
            (ForecastRequest(10), expected(built, weights, 10)),
            (ForecastRequest(3, intervals=False), expected(built, weights, 3, intervals=False)),
        ]:
            assert_same(loaded.predictor.forecast(request), answer)
            assert rebuilt.forecast(request) == loaded.predictor.forecast(request)
        rows = loaded.predictor.forecast(ForecastRequest(10))["forecast"]
        assert all(row["yhat_lower"] < row["yhat"] < row["yhat_upper"] for row in rows)


def test_a_bad_blend_is_a_clear_load_error(blends: dict[str, BuiltModel], tmp_path: Path):
    broken = tmp_path / "broken"
    shutil.copytree(blends["half"].model_dir, broken)
    metadata = json.loads((broken / "metadata.json").read_text())
    metadata[blend.BLEND_KEY]["season_weights"] = [0.7, 0.7]
    (broken / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ServingError, match="not a blend model: season_weights must") as caught:
        load_model(broken)
    assert http_status(caught.value) == 400 and caught.value.code == "model_invalid"
    del metadata[blend.BLEND_KEY]
    (broken / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ServingError, match=r"metadata\.json lacks 'blend'"):
        load_model(broken)


def test_the_mms_handler_loads_the_blend_through_the_factory(blends: dict[str, BuiltModel]):
    """MMS's own Python side (its model loader and context), no Java."""
    from tests.serving.test_mms_handler import load_service

    built = blends["half"]
    handler = load_service(built.model_dir, "blend")._entry_point.__self__
    assert isinstance(handler.predictor, ComposedPredictor) and handler.load_error is None


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_blend_archive_round_trips_through_the_server_with_intervals(
    server: Server, blends: dict[str, BuiltModel], tmp_path: Path
):
    built = blends["thirds"]
    # As the platform does: the archive training wrote, extracted under the models folder.
    model_dir = extract(built.archive, tmp_path / "models" / "opaque-blend" / "model")
    loaded = server.load("opaque-blend", model_dir)
    assert loaded.status_code == 200, loaded.text
    for body, answer in [
        ({"period": 9}, expected(built, THIRDS, 9)),
        ({"period": 4, "intervals": False}, expected(built, THIRDS, 4, intervals=False)),
    ]:
        answered = server.invoke("opaque-blend", json.dumps(body), JSON_HEADERS)
        assert answered.status_code == 200, answered.text
        assert answered.headers["Content-Type"].startswith("application/json")
        assert_same(answered.json(), answer)
    refused = server.invoke("opaque-blend", json.dumps({"period": 0}), JSON_HEADERS)
    assert refused.status_code == 400 and refused.json()["error"] == "bad_period"
    assert requests.delete(f"{server.url}/models/opaque-blend", timeout=30).status_code == 200


def test_plot_and_the_batch_forecast_draw_the_blend(blends: dict[str, BuiltModel]):
    from fleetcast.forecast.predict import forecast_archive, forecast_model
    from fleetcast.plot import forecast_from_model, history_from_model

    built = blends["thirds"]
    answer = expected(built, THIRDS, 10)["forecast"]
    model_json, metadata = archive.read_archive(built.archive)
    drawn = forecast_from_model(model_json, metadata, 10)
    np.testing.assert_allclose(drawn["yhat"], [row["yhat"] for row in answer], rtol=1e-9)
    # (plot calls Prophet's predict unseeded: its bands are drawn afresh, so only their place is checked)
    assert np.all(drawn["yhat_lower"] < drawn["yhat"]) and np.all(drawn["yhat"] < drawn["yhat_upper"])
    assert len(history_from_model(model_json, metadata)) == len(built.history)  # the Prophet part's
    # From the archive's compiled.json (its Prophet part's), and from model.json as an archive without it.
    batch = forecast_archive(built.archive, 10)
    assert batch.model == "blend" and batch.source == archive.COMPILED_FILE
    from_json = forecast_model(model_json, metadata, 10, built.archive)
    assert from_json.source == archive.MODEL_FILE
    for forecast in (batch, from_json):
        for column in ("yhat", "yhat_lower", "yhat_upper"):
            np.testing.assert_allclose(getattr(forecast, column), [row[column] for row in answer], rtol=1e-9)
