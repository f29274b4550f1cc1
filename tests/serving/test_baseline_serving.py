"""A seasonal-naive archive is served like any Prophet model: the factory, then both real servers.

The answer a server gives over HTTP is compared with the model's own predict on the dates the request
names, so the servers can neither drop the intervals nor answer from some other model.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import requests

from fleetcast.model import archive
from fleetcast.model.baseline import SeasonalNaive
from fleetcast.model.compiled import future_dates, iso_strings
from fleetcast.model.settings import ProphetSettings
from fleetcast.serving.baseline_predictor import BaselinePredictor
from fleetcast.serving.errors import ServingError, http_status
from fleetcast.serving.predictors import from_document, load_model, load_predictor
from fleetcast.serving.protocol import ForecastRequest
from tests.serving.models import BuiltModel, build_model, daily_history, extract
from tests.support.servers import JSON_HEADERS, Server


def expected(model_dir: Path, period: int, freq: str | None = None, intervals: bool = True) -> dict:
    """The model's own answer: its predict on `period` steps after its last observation."""
    model_json, metadata = archive.read_model_dir(model_dir)
    model = SeasonalNaive.from_json(model_json)
    dates = future_dates(model.last_observation, period, freq or model.freq)
    predicted = model.predict(dates, intervals=intervals)
    rows = []
    for i, ds in enumerate(iso_strings(predicted.ds)):
        row = {"ds": ds, "yhat": float(predicted.yhat[i])}
        if intervals:
            row |= {
                "yhat_lower": float(predicted.yhat_lower[i]),
                "yhat_upper": float(predicted.yhat_upper[i]),
            }
        rows.append(row)
    return {"customer": metadata["customer"], "forecast": rows}


def test_the_factory_serves_the_baseline_kind(models: dict[str, BuiltModel]):
    naive = models["naive"]
    assert naive.metadata["kind"] == archive.BASELINE_KIND
    loaded = load_model(naive.model_dir)
    assert isinstance(loaded.predictor, BaselinePredictor) and loaded.document["kind"] == "baseline"
    assert 0 < loaded.estimate_bytes < 64 * 1024
    rebuilt = from_document(json.loads(json.dumps(loaded.document)))  # what another lean worker holds
    for request, answer in [
        (ForecastRequest(10), expected(naive.model_dir, 10)),
        (ForecastRequest(3, intervals=False), expected(naive.model_dir, 3, intervals=False)),
        (ForecastRequest(30, freq="h"), expected(naive.model_dir, 30, freq="h")),
    ]:
        assert loaded.predictor.forecast(request) == answer
        assert rebuilt.forecast(request) == answer
    rows = loaded.predictor.forecast(ForecastRequest(14))["forecast"]
    assert all(row["yhat_lower"] < row["yhat"] < row["yhat_upper"] for row in rows)
    # Two weeks ahead repeats values two weeks old: a wider interval than one week ahead.
    assert rows[7]["yhat_upper"] - rows[7]["yhat"] > rows[0]["yhat_upper"] - rows[0]["yhat"]
    # Prophet archives still go to the Prophet predictors.
    assert load_model(models["daily"].model_dir).document["kind"] == "compiled"


def test_a_bad_baseline_is_a_clear_load_error(models: dict[str, BuiltModel], tmp_path: Path):
    broken = tmp_path / "broken"
    shutil.copytree(models["naive"].model_dir, broken)
    model_json, metadata = archive.read_model_dir(broken)
    bad_json = model_json.replace('"values"', '"valuez"')
    (broken / "model.json").write_text(bad_json)
    (broken / "metadata.json").write_text(
        json.dumps({**metadata, "model_sha256": archive.sha256_text(bad_json)})
    )
    with pytest.raises(ServingError, match="not a seasonal-naive model: missing field 'values'") as caught:
        load_model(broken)
    assert http_status(caught.value) == 400 and caught.value.code == "model_invalid"

    newer = tmp_path / "newer"
    shutil.copytree(models["naive"].model_dir, newer)
    (newer / "metadata.json").write_text(json.dumps({**metadata, "kind": "neural-net"}))
    with pytest.raises(ServingError, match="model kind 'neural-net'") as caught:
        load_predictor(newer)
    assert http_status(caught.value) == 400
    with pytest.raises(ServingError, match="model kind 'neural-net'") as caught:
        load_model(newer)
    assert http_status(caught.value) == 400


def test_the_mms_handler_loads_through_the_factory(models: dict[str, BuiltModel]):
    """MMS's own Python side (its model loader and context), no Java: the handler serves the baseline."""
    from tests.serving.test_mms_handler import load_service

    naive = models["naive"]
    handler = load_service(naive.model_dir, "naive")._entry_point.__self__
    assert isinstance(handler.predictor, BaselinePredictor) and handler.load_error is None


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_baseline_archive_round_trips_through_the_server_with_intervals(
    server: Server, models: dict[str, BuiltModel], tmp_path: Path
):
    naive = models["naive"]
    # As the platform does: the archive training wrote, extracted under the models folder.
    model_dir = extract(naive.archive, tmp_path / "models" / "opaque-naive" / "model")
    loaded = server.load("opaque-naive", model_dir)
    assert loaded.status_code == 200, loaded.text
    for body, answer in [
        ({"period": 9}, expected(model_dir, 9)),
        ({"period": 9, "intervals": True}, expected(model_dir, 9)),
        ({"period": 4, "intervals": False}, expected(model_dir, 4, intervals=False)),
        ({"period": 12, "freq": "h"}, expected(model_dir, 12, freq="h")),
    ]:
        answered = server.invoke("opaque-naive", json.dumps(body), JSON_HEADERS)
        assert answered.status_code == 200, answered.text
        assert answered.headers["Content-Type"].startswith("application/json")
        assert answered.json() == answer
    assert {"yhat_lower", "yhat_upper"} <= set(answer["forecast"][0])
    refused = server.invoke("opaque-naive", json.dumps({"period": 0}), JSON_HEADERS)
    assert refused.status_code == 400 and refused.json()["error"] == "bad_period"
    assert requests.delete(f"{server.url}/models/opaque-naive", timeout=30).status_code == 200


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_baseline_with_no_intervals_says_so_like_a_prophet_model(server: Server, tmp_path: Path):
    built = build_model(
        tmp_path,
        "21",
        daily_history(21),
        replace(ProphetSettings(), uncertainty_samples=0),
        kind=archive.BASELINE_KIND,
    )
    assert server.load("point-only", built.model_dir).status_code == 200
    answered = server.invoke("point-only", b'{"period": 3}', JSON_HEADERS)
    assert answered.status_code == 200 and set(answered.json()["forecast"][0]) == {"ds", "yhat"}
    refused = server.invoke("point-only", b'{"period": 3, "intervals": true}', JSON_HEADERS)
    assert refused.status_code == 400 and refused.json()["error"] == "intervals_unavailable"
    assert np.isfinite(answered.json()["forecast"][0]["yhat"])


def test_plot_draws_a_baseline_customer_from_its_archive(models: dict[str, BuiltModel], tmp_path: Path):
    from fleetcast.plot import forecast_from_model, history_from_model, plot_main

    naive = models["naive"]
    model_json, metadata = archive.read_archive(naive.archive)
    forecast = forecast_from_model(model_json, metadata, 10)
    answer = expected(naive.model_dir, 10)["forecast"]
    assert forecast["yhat"].tolist() == [row["yhat"] for row in answer]
    assert forecast["yhat_upper"].tolist() == [row["yhat_upper"] for row in answer]
    assert len(history_from_model(model_json, metadata)) == 8  # the last week and the day before it
    png = tmp_path / "naive.png"
    code = plot_main(
        models=naive.archive.parent,
        data=None,
        customer=naive.customer,
        period=10,
        endpoint_url=None,
        endpoint_name="fleetcast",
        history_days=30,
        out=png,
    )
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
