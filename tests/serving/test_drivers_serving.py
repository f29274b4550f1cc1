"""Serving a model trained with country holidays and a temperature regressor.

The request carries the future temperatures (`{"period": 3, "regressors": {"temperature": [...]}}`); the
compiled predictor and Prophet's own answer it as stock `predict` does on the same future frame; a request
without them, or with the wrong count, is a 400 naming the regressor and the count; a model without
drivers answers today's request unchanged. Both servers, both routes, the same body.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from prophet.serialize import model_from_json

from fleetcast.data.generate import customer_series
from fleetcast.model.settings import ProphetSettings, Regressor
from fleetcast.serving.compiled_predictor import CompiledPredictor
from fleetcast.serving.environment import MULTI_MODEL_ENV
from fleetcast.serving.errors import InvalidRequestError, http_status
from fleetcast.serving.predictor import INTERVAL_SEED, ProphetPredictor
from fleetcast.serving.predictors import load_model
from fleetcast.serving.protocol import parse_request
from tests.helpers import require_java
from tests.serving.models import BuiltModel, build_model
from tests.support.servers import JSON_HEADERS, Server, start_server

DRIVERS = ProphetSettings(
    uncertainty_samples=200, country_holidays="US", regressors=(Regressor("temperature"),)
)
TEMPERATURES = [4.1, 3.8, 5.0]


def drivers_history(customer: int) -> pd.DataFrame:
    # 2021-12-01 .. 2022-12-21: Christmas 2021 is learnt, the forecast after the history crosses Christmas
    stamps, values = customer_series(customer, 7, pd.date_range("2021-12-01", periods=386, freq="D"), 386)
    history = pd.DataFrame({"ds": stamps, "y": values})
    rng = np.random.default_rng(customer)
    history["temperature"] = (
        10 - 9 * np.cos(2 * np.pi * (np.arange(len(history)) - 20) / 365) + rng.normal(0, 2, len(history))
    )
    history["y"] = history["y"] + 6 * np.maximum(15 - history["temperature"], 0)
    return history


@pytest.fixture(scope="module")
def driver_model(tmp_path_factory) -> BuiltModel:
    return build_model(tmp_path_factory.mktemp("drivers"), "21", drivers_history(21), DRIVERS)


def _reference(model_dir: Path, temperatures: list[float], intervals: bool) -> pd.DataFrame:
    model = model_from_json((model_dir / "model.json").read_text())
    future = model.make_future_dataframe(periods=len(temperatures), freq="D", include_history=False)
    future["temperature"] = temperatures
    if not intervals:
        model.uncertainty_samples = 0
    np.random.seed(INTERVAL_SEED)
    return model.predict(future)


def _request(body: dict):
    return parse_request(json.dumps(body).encode(), "application/json")


def test_compiled_and_prophet_predictors_answer_as_stock_predict(driver_model):
    loaded = load_model(driver_model.model_dir)
    assert loaded.compiled, "a holiday + regressor model is served by the compiled predictor"
    temperatures = [4.1, 3.8, 5.0, -2.0, 0.5, 7.0, 9.5, 1.0, 2.0, 3.0]
    request = _request({"period": 10, "regressors": {"temperature": temperatures}})
    expected = _reference(driver_model.model_dir, temperatures, intervals=True)
    for predictor in (loaded.predictor, ProphetPredictor.load(driver_model.model_dir)):
        rows = predictor.forecast(request)["forecast"]
        assert [row["ds"] for row in rows] == [d.isoformat() for d in expected["ds"]]
        for column in ("yhat", "yhat_lower", "yhat_upper"):
            np.testing.assert_allclose([row[column] for row in rows], expected[column], rtol=1e-9)
    # Christmas (in the forecast) is a holiday the model learnt: the holiday term is part of yhat.
    assert expected.loc[expected["ds"] == "2022-12-25", "holidays"].abs().iloc[0] > 0


def test_a_missing_or_wrong_length_regressor_is_a_400_naming_it(driver_model):
    predictor = load_model(driver_model.model_dir).predictor
    with pytest.raises(InvalidRequestError) as missing:
        predictor.forecast(_request({"period": 3}))
    assert http_status(missing.value) == 400 and missing.value.code == "missing_regressor"
    assert "'temperature'" in missing.value.message and "3 values" in missing.value.message
    with pytest.raises(InvalidRequestError) as short:
        _request({"period": 3, "regressors": {"temperature": [4.1, 3.8]}})
    assert http_status(short.value) == 400 and short.value.code == "bad_regressors"
    assert "'temperature' has 2 values" in short.value.message and "exactly 3" in short.value.message
    for bad in ({"temperature": [1, "x", 2]}, {"temperature": [1, None, 2]}, [1, 2, 3], {"temperature": 4}):
        with pytest.raises(InvalidRequestError, match="regressors must be"):
            _request({"period": 3, "regressors": bad})
    with pytest.raises(InvalidRequestError, match="regressors must be"):  # Python's json reads NaN: refused
        parse_request(b'{"period": 3, "regressors": {"temperature": [1, NaN, 2]}}', "application/json")


def test_a_model_without_drivers_answers_todays_request_unchanged(models):
    predictor = load_model(models["daily"].model_dir).predictor
    plain = predictor.forecast(_request({"period": 3}))
    # Values for a regressor the model does not use are ignored: one request shape for a mixed fleet.
    with_extra = predictor.forecast(_request({"period": 3, "regressors": {"temperature": TEMPERATURES}}))
    assert plain == with_extra


def test_the_compiled_document_keeps_the_drivers(driver_model):
    loaded = load_model(driver_model.model_dir)
    assert isinstance(loaded.predictor, CompiledPredictor)
    from fleetcast.serving.predictors import from_document

    rebuilt = from_document(json.loads(json.dumps(loaded.document)))
    request = _request({"period": 3, "regressors": {"temperature": TEMPERATURES}})
    assert rebuilt.forecast(request) == loaded.predictor.forecast(request)


SERVERS = [pytest.param("mms", marks=pytest.mark.mms), "lean"]


@pytest.fixture(scope="module", params=SERVERS)
def server(request, tmp_path_factory, driver_model) -> Iterator[Server]:
    if request.param == "mms":
        require_java()
    root = tmp_path_factory.mktemp(f"drivers-{request.param}")
    with start_server(request.param, root, {MULTI_MODEL_ENV: "true"}) as running:
        assert running.load("drivers-21", driver_model.model_dir).status_code == 200
        yield running


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_both_routes_of_both_servers_take_the_regressors(server, driver_model):
    body = json.dumps({"period": 3, "regressors": {"temperature": TEMPERATURES}}).encode()
    expected = _reference(driver_model.model_dir, TEMPERATURES, intervals=True)
    routes = {
        "mme": server.invoke("drivers-21", body),
        "invocations": requests.post(
            f"{server.url}/invocations?model_name=drivers-21", data=body, headers=JSON_HEADERS, timeout=60
        ),
    }
    for route, answer in routes.items():
        assert answer.status_code == 200, (route, answer.text)
        rows = answer.json()["forecast"]
        np.testing.assert_allclose([r["yhat"] for r in rows], expected["yhat"], rtol=1e-9, err_msg=route)
    missing = server.invoke("drivers-21", b'{"period": 3}')
    assert missing.status_code == 400, missing.text
    assert missing.json()["error"] == "missing_regressor" and "'temperature'" in missing.json()["message"]
    short = server.invoke("drivers-21", b'{"period": 3, "regressors": {"temperature": [1.0]}}')
    assert short.status_code == 400 and "exactly 3" in short.json()["message"]


def test_single_model_mode_too(tmp_path, driver_model):
    root = tmp_path
    shutil.copytree(driver_model.model_dir, root / "opt_ml" / "model")
    with start_server("lean", root, {MULTI_MODEL_ENV: "false"}) as running:
        body = json.dumps({"period": 3, "regressors": {"temperature": TEMPERATURES}}).encode()
        answer = requests.post(f"{running.url}/invocations", data=body, headers=JSON_HEADERS, timeout=60)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["forecast"]) == 3


def test_the_mms_handler_builds_a_holiday_model_s_calendar_at_load(driver_model):
    """MMS loads each model in a worker of its own, after any fork: the calendar is built at load, so the
    first request does not pay for it (~0.3 s)."""
    from fleetcast.model import country_holidays
    from tests.serving.test_mms_handler import load_service

    country_holidays.calendar.cache_clear()
    handler = load_service(driver_model.model_dir, "drivers")._entry_point.__self__
    assert handler.load_error is None
    assert country_holidays.calendar.cache_info().currsize == 1
    year = int(driver_model.metadata["end"][:4])
    country_holidays.calendar("US", (year,))
    assert country_holidays.calendar.cache_info().hits == 1  # the very calendar built at load
