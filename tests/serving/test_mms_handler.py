"""The handler service as MMS's own Python side loads and calls it (model loader, Context), no Java."""

from __future__ import annotations

import json
import shutil

import pytest
from mms.context import RequestProcessor
from mms.model_loader import MmsModelLoader, ModelLoader

from fleetcast.serving.mms import handler as mms_handler
from fleetcast.serving.predictor import ProphetPredictor
from fleetcast.serving.protocol import ForecastRequest

HANDLER = "fleetcast.serving.mms.handler"


def test_module_defines_exactly_one_class():
    # MMS refuses a handler module with more than one class of its own.
    assert len(ModelLoader.list_model_services(mms_handler)) == 1


def load_service(model_dir, name="m"):
    return MmsModelLoader().load(name, str(model_dir), HANDLER, None, 1)


def invoke(service, body, headers=None):
    """One request as MMS's Service.predict hands it over; returns (status, phrase, content type, body)."""
    context = service.context
    context.request_processor = [RequestProcessor(headers or {"Content-Type": "application/json"})]
    context.request_ids = {0: "request-1"}
    [answer] = service._entry_point([{"body": bytearray(body)}], context)
    status, phrase = context.get_response_status(0)
    return status, phrase, context.get_response_content_type(0), json.loads(answer)


def test_forecast_through_the_mms_loader(models):
    built = models["daily"]
    service = load_service(built.model_dir)
    status, _, content_type, body = invoke(service, b'{"period": 5}')
    assert (status, content_type) == (200, "application/json")
    expected = ProphetPredictor.load(built.model_dir).forecast(ForecastRequest(5))
    assert body == json.loads(json.dumps(expected))


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"{", {"Content-Type": "application/json"}, 400, "bad_json"),
        (b'{"period": 0}', {"content-type": "application/json"}, 400, "bad_period"),
        (b'{"period": 7}', {"Content-Type": "text/csv"}, 415, "unsupported_content_type"),
        # MMS also files the body's own content type under the parameter name
        (b'{"period": 7}', {"body": {"content-type": "text/csv"}}, 415, "unsupported_content_type"),
        (b'{"period": 7, "intervals": "no"}', {}, 400, "bad_intervals"),
    ],
)
def test_bad_requests_get_status_and_json_error(models, body, headers, status, code):
    service = load_service(models["daily"].model_dir)
    got_status, phrase, content_type, answer = invoke(service, body, headers)
    assert (got_status, phrase, content_type) == (status, code, "application/json")
    assert answer["error"] == code and answer["message"]


def test_broken_model_loads_then_every_invoke_says_why(models, tmp_path):
    model_dir = tmp_path / "broken" / "model"
    shutil.copytree(models["daily"].model_dir, model_dir)
    (model_dir / "metadata.json").write_text("{not json")
    service = load_service(model_dir)  # MMS's load succeeds: it swallows initialize errors
    for _ in range(2):
        status, phrase, _, answer = invoke(service, b'{"period": 3}')
        assert (status, phrase, answer["error"]) == (400, "model_invalid", "model_invalid")
        assert str(model_dir) in answer["message"] and "Traceback" not in answer["message"]


def test_handler_without_data_does_nothing(models):
    service = load_service(models["daily"].model_dir)
    assert service._entry_point(None, service.context) is None
