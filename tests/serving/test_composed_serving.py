"""Blend and seasonal-change archives are served like any Prophet model: the factory, both real servers,
plot and the batch forecast.

Every answer is compared with one computed without fleetcast's predictors, from Prophet's own predict on
the archive's model.json (seeded as the servers seed it) and the history's values whole weeks back:
- a blend: w x Prophet + (1 - w) x sum_j a_j x (the value j + k weeks back), k the whole weeks that reach
  back into the history; bounds blended likewise with the seasonal part's;
- a seasonal change: the value k weeks back + k x Prophet's change; bounds sqrt(k) times as far from it as
  Prophet's are from its change.
So no path can drop the seasonal part, the intervals, or answer from the Prophet part alone.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests

from fleetcast.model import archive, blend, composed, seasonal_change
from fleetcast.serving.composed_predictor import ComposedPredictor
from fleetcast.serving.errors import ServingError, http_status
from fleetcast.serving.predictors import from_document, load_model
from fleetcast.serving.protocol import ForecastRequest
from tests.serving.models import BuiltModel, build_model, daily_history, extract, prophet_reference
from tests.support.servers import JSON_HEADERS, Server

WEEK = pd.Timedelta(days=7)
THIRDS = next(w for w in blend.WEIGHTS if w.name == "thirds-4-weeks")  # reaches back several weeks
HALF = next(w for w in blend.WEIGHTS if w.prophet_weight == 0.5 and w.seasons == 1)


def weeks_ahead(last: pd.Timestamp, ds: pd.Timestamp) -> int:
    return -((last - ds) // WEEK)  # ceil((ds - last) / week)


def blended_by_hand(built: BuiltModel, weights: blend.Weights, period: int, intervals: bool) -> dict:
    reference = prophet_reference(built.model_dir, period, "D", intervals)
    history = built.history.set_index("ds")["y"]
    seasonal_part = composed.from_metadata(built.metadata).seasonal
    w, rows = weights.prophet_weight, []
    for i, ds in enumerate(reference["ds"]):
        k = weeks_ahead(history.index[-1], ds)
        lagged = sum(a * history[ds - (k + j) * WEEK] for j, a in enumerate(weights.season_weights))
        row = {"ds": ds.isoformat(), "yhat": w * reference["yhat"][i] + (1 - w) * lagged}
        if intervals:
            for bound, residual in (
                ("yhat_lower", seasonal_part.residual_lower),
                ("yhat_upper", seasonal_part.residual_upper),
            ):
                row[bound] = w * reference[bound][i] + (1 - w) * (lagged + residual * np.sqrt(k))
        rows.append(row)
    return {"customer": built.customer, "forecast": rows}


def changed_by_hand(built: BuiltModel, period: int, intervals: bool) -> dict:
    reference = prophet_reference(built.model_dir, period, "D", intervals)
    history = built.history.set_index("ds")["y"]
    rows = []
    for i, ds in enumerate(reference["ds"]):
        k = weeks_ahead(history.index[-1], ds)
        change = reference["yhat"][i]
        row = {"ds": ds.isoformat(), "yhat": history[ds - k * WEEK] + k * change}
        if intervals:
            for bound in ("yhat_lower", "yhat_upper"):
                row[bound] = row["yhat"] + np.sqrt(k) * (reference[bound][i] - change)
        rows.append(row)
    return {"customer": built.customer, "forecast": rows}


@dataclass(frozen=True)
class Case:
    built: BuiltModel
    kind: str
    expected: Callable[[int, bool], dict]  # (period, intervals) -> the answer computed by hand
    break_document: Callable[[dict[str, Any]], None]  # makes its metadata.json entry invalid
    broken: str  # what the load error then says


def case(root: Path, name: str) -> Case:
    if name == "seasonal-change":
        built = build_model(root, "41", daily_history(41), kind=archive.CHANGE_KIND)
        return Case(
            built,
            archive.CHANGE_KIND,
            lambda period, intervals: changed_by_hand(built, period, intervals),
            lambda document: document["seasonal"].update(values="none"),
            "not a seasonal-change model: its seasonal part",
        )
    weights = THIRDS if name == "blend-thirds" else HALF
    customer = 31 if weights is THIRDS else 32
    built = build_model(root, str(customer), daily_history(customer), weights=weights)
    return Case(
        built,
        archive.BLEND_KIND,
        lambda period, intervals: blended_by_hand(built, weights, period, intervals),
        lambda document: document.update(season_weights=[0.7, 0.7]),
        "not a blend model: season_weights must",
    )


@pytest.fixture(scope="module", params=["blend-thirds", "blend-half", "seasonal-change"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Case:
    return case(tmp_path_factory.mktemp("composed-models"), request.param)


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


def test_the_factory_serves_the_composed_kinds(served: Case):
    assert served.built.metadata["kind"] == served.kind
    loaded = load_model(served.built.model_dir)
    assert isinstance(loaded.predictor, ComposedPredictor) and loaded.document["composed_kind"] == served.kind
    assert loaded.compiled  # its Prophet part loads through the compiled predictor
    rebuilt = from_document(json.loads(json.dumps(loaded.document)))  # what another lean worker holds
    # 17 days: the last three reach three weeks ahead.
    for request in (ForecastRequest(17), ForecastRequest(3, intervals=False)):
        answer = loaded.predictor.forecast(request)
        assert_same(answer, served.expected(request.period, request.intervals is not False))
        assert rebuilt.forecast(request) == answer
    rows = loaded.predictor.forecast(ForecastRequest(17))["forecast"]
    assert all(row["yhat_lower"] < row["yhat"] < row["yhat_upper"] for row in rows)


def test_a_bad_seasonal_part_is_a_clear_load_error(served: Case, tmp_path: Path):
    broken = tmp_path / "broken"
    shutil.copytree(served.built.model_dir, broken)
    metadata = json.loads((broken / "metadata.json").read_text())
    key = composed.metadata_key(served.kind)
    served.break_document(metadata[key])
    (broken / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ServingError, match=served.broken) as caught:
        load_model(broken)
    assert http_status(caught.value) == 400 and caught.value.code == "model_invalid"
    del metadata[key]
    (broken / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ServingError, match=rf"metadata\.json lacks '{key}'"):
        load_model(broken)


def test_the_mms_handler_loads_them_through_the_factory(served: Case):
    """MMS's own Python side (its model loader and context), no Java."""
    from tests.serving.test_mms_handler import load_service

    handler = load_service(served.built.model_dir, served.kind)._entry_point.__self__
    assert isinstance(handler.predictor, ComposedPredictor) and handler.load_error is None


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_composed_archive_round_trips_through_the_server_with_intervals(
    server: Server, served: Case, tmp_path: Path
):
    # As the platform does: the archive training wrote, extracted under the models folder.
    name = f"opaque-{served.kind}"
    loaded = server.load(name, extract(served.built.archive, tmp_path / "models" / name / "model"))
    assert loaded.status_code == 200, loaded.text
    for period, intervals in ((10, True), (4, False)):
        body = {"period": period} if intervals else {"period": period, "intervals": False}
        answered = server.invoke(name, json.dumps(body), JSON_HEADERS)
        assert answered.status_code == 200, answered.text
        assert answered.headers["Content-Type"].startswith("application/json")
        assert_same(answered.json(), served.expected(period, intervals))
    refused = server.invoke(name, json.dumps({"period": 0}), JSON_HEADERS)
    assert refused.status_code == 400 and refused.json()["error"] == "bad_period"
    assert requests.delete(f"{server.url}/models/{name}", timeout=30).status_code == 200


def test_plot_and_the_batch_forecast_draw_them(served: Case):
    from fleetcast.forecast.predict import forecast_archive, forecast_model
    from fleetcast.plot import forecast_from_model, history_from_model

    built = served.built
    answer = served.expected(10, True)["forecast"]
    model_json, metadata = archive.read_archive(built.archive)
    drawn = forecast_from_model(model_json, metadata, 10)
    np.testing.assert_allclose(drawn["yhat"], [row["yhat"] for row in answer], rtol=1e-9)
    # (plot calls Prophet's predict unseeded: its bands are drawn afresh, so only their place is checked)
    assert np.all(drawn["yhat_lower"] < drawn["yhat"]) and np.all(drawn["yhat"] < drawn["yhat_upper"])
    shown = history_from_model(model_json, metadata)
    if served.kind == archive.BLEND_KIND:
        assert len(shown) == len(built.history)  # the Prophet part's history: the values
    else:  # the Prophet part's history is the changes: the values drawn are the model's last week
        assert metadata[seasonal_change.CHANGE_KEY]["seasonal"]["values"] == shown["y"].tolist()
        assert shown["y"].iloc[-1] == built.history["y"].iloc[-1]
    # From the archive's compiled.json (its Prophet part's), and from model.json as an archive without it.
    batch = forecast_archive(built.archive, 10)
    assert batch.model == metadata["model"] and batch.source == archive.COMPILED_FILE
    from_json = forecast_model(model_json, metadata, 10, built.archive)
    assert from_json.source == archive.MODEL_FILE
    for forecast in (batch, from_json):
        for column in ("yhat", "yhat_lower", "yhat_upper"):
            np.testing.assert_allclose(getattr(forecast, column), [row[column] for row in answer], rtol=1e-9)
