"""Hostile and odd requests against the real lean server (gunicorn, 2 workers, real HTTP).

Every answer must be our JSON error body with a 4xx (never Flask's or gunicorn's HTML, never a 5xx),
logged request values must stay short, and over-long names must be refused before the filesystem.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest
import requests

from tests.helpers import require_java
from tests.serving.models import WRONG_TYPED_FIELDS, wrong_typed_model
from tests.support.servers import JSON_HEADERS, Server, start_lean, start_mms

NESTED_DEPTH = 100_000


def assert_json_error(answer: requests.Response, status: int, code: str | None = None) -> dict:
    assert answer.status_code == status, answer.text[:500]
    assert answer.headers["Content-Type"].startswith("application/json"), answer.text[:300]
    body = answer.json()
    assert set(body) == {"error", "message"} and body["message"], body
    if code is not None:
        assert body["error"] == code, body
    assert "<html" not in answer.text.lower() and "Traceback" not in answer.text
    return body


@pytest.fixture(scope="module")
def lean(tmp_path_factory: pytest.TempPathFactory, models) -> Iterator[Server]:
    with start_lean(tmp_path_factory.mktemp("hostile"), workers=2) as server:
        assert server.load("daily", models["daily"].model_dir).status_code == 200
        yield server


def test_a_300_character_path_component_is_400_before_the_filesystem(lean, tmp_path):
    answer = lean.load("long-component", tmp_path / ("x" * 300) / "model")
    assert_json_error(answer, 400, "bad_model_url")
    assert requests.get(f"{lean.url}/models/long-component", timeout=10).status_code == 404


def test_an_over_long_model_name_is_400(lean, models):
    assert_json_error(lean.load("n" * 300, models["daily"].model_dir), 400, "bad_model_name")


def test_a_20_mb_url_is_400_and_is_not_logged_whole(lean):
    before = len(lean.log())
    answer = requests.post(
        f"{lean.url}/models", json={"model_name": "huge", "url": "/" + "u" * (20 * 1024 * 1024)}, timeout=60
    )
    assert_json_error(answer, 400, "bad_model_url")
    assert len(answer.content) < 2000
    assert len(lean.log()) - before < 10_000


@pytest.mark.parametrize("route", ["/models", "/models/daily/invoke", "/invocations?model_name=daily"])
def test_deeply_nested_json_is_400(lean, route):
    body = "[" * NESTED_DEPTH + "]" * NESTED_DEPTH
    answer = requests.post(f"{lean.url}{route}", data=body, headers=JSON_HEADERS, timeout=30)
    assert_json_error(answer, 400)


@pytest.mark.parametrize("field", sorted(WRONG_TYPED_FIELDS))
def test_wrong_typed_model_json_fields_are_400_at_load(lean, models, tmp_path, field):
    model_dir = wrong_typed_model(
        models["daily"].model_dir, tmp_path / "wrong" / "model", WRONG_TYPED_FIELDS[field]
    )
    body = assert_json_error(lean.load("wrong-typed", model_dir), 400, "model_invalid")
    assert str(model_dir) in body["message"]
    assert requests.get(f"{lean.url}/models/wrong-typed", timeout=10).status_code == 404


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_a_page_of_nothing_is_400_never_an_endless_token(lean, limit):
    assert_json_error(
        requests.get(f"{lean.url}/models", params={"limit": limit}, timeout=10), 400, "bad_limit"
    )


def test_invocations_in_multi_model_mode_is_a_clear_400(lean):
    body = assert_json_error(
        requests.post(f"{lean.url}/invocations", data=b'{"period": 3}', headers=JSON_HEADERS, timeout=10),
        400,
        "model_name_required",
    )
    assert "/models/<name>/invoke" in body["message"]


def test_invocations_with_model_name_serves_it_and_checks_the_target_model(lean):
    url = f"{lean.url}/invocations?model_name=daily"
    served = requests.post(url, data=b'{"period": 3}', headers=JSON_HEADERS, timeout=10)
    assert served.status_code == 200 and served.json()["customer"] == "7"
    matching = {**JSON_HEADERS, "X-Amzn-SageMaker-Target-Model": "eu/7.tar.gz"}
    assert requests.post(url, data=b'{"period": 3}', headers=matching, timeout=10).status_code == 200
    other = {**JSON_HEADERS, "X-Amzn-SageMaker-Target-Model": "3.tar.gz"}
    body = assert_json_error(
        requests.post(url, data=b'{"period": 3}', headers=other, timeout=10), 400, "target_model_mismatch"
    )
    assert "3.tar.gz" in body["message"] and "7" in body["message"]
    missing = requests.post(f"{lean.url}/invocations?model_name=nobody", data=b'{"period": 3}', timeout=10)
    assert_json_error(missing, 404, "model_not_found")


def test_octet_stream_json_is_accepted_and_anything_else_is_415(lean):
    octet = {"Content-Type": "application/octet-stream"}
    accepted = lean.invoke("daily", b'{"period": 2}', octet)
    assert accepted.status_code == 200, accepted.text
    assert len(accepted.json()["forecast"]) == 2
    assert_json_error(lean.invoke("daily", b"\x00\x01 not json", octet), 415, "unsupported_content_type")
    assert_json_error(lean.invoke("daily", b'{"period": 2}', {"Content-Type": "text/csv"}), 415)


def test_oversized_body_is_a_json_413(lean):
    assert_json_error(lean.invoke("daily", b" " * (7 * 1024 * 1024)), 413, "payload_too_large")


def test_unknown_routes_and_methods_are_json(lean):
    assert_json_error(requests.get(f"{lean.url}/nothing/here", timeout=10), 404, "not_found")
    assert_json_error(requests.put(f"{lean.url}/models", timeout=10), 405, "method_not_allowed")


def test_requests_gunicorn_itself_refuses_are_json(lean):
    host, port = lean.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/models/" + "a" * 10_000)  # over gunicorn's request-line limit
        response = connection.getresponse()
        text = response.read().decode()
    finally:
        connection.close()
    assert 400 <= response.status < 500
    assert response.getheader("Content-Type", "").startswith("application/json"), text
    assert json.loads(text)["error"]


def test_the_server_logged_no_traceback_for_any_of_this(lean):
    assert "Traceback" not in lean.log()


def test_a_full_registry_is_a_json_507_so_the_platform_evicts(tmp_path, models):
    with start_lean(tmp_path, {"FLEETCAST_MAX_MODELS": "2"}, workers=2) as server:
        for name in ("a", "b"):
            assert server.load(name, models["daily"].model_dir).status_code == 200
        assert_json_error(server.load("c", models["daily"].model_dir), 507, "insufficient_storage")
        assert requests.delete(f"{server.url}/models/a", timeout=30).status_code == 200
        assert server.load("c", models["daily"].model_dir).status_code == 200  # room after the eviction
        assert server.invoke("c", b'{"period": 2}').status_code == 200


@pytest.fixture(scope="module")
def mms(tmp_path_factory: pytest.TempPathFactory, models) -> Iterator[Server]:
    require_java()
    with start_mms(tmp_path_factory.mktemp("hostile-mms")) as server:
        assert server.load("daily", models["daily"].model_dir).status_code == 200
        yield server


@pytest.mark.mms
@pytest.mark.slow
def test_mms_answers_what_reaches_our_handler_in_json_and_nothing_in_html(mms, tmp_path):
    """What reaches our handler (every invoke) gets our JSON 4xx. MMS's own Java management API answers
    the rest in its own JSON ({"code", "type", "message"}) or, over its frame limit, an empty 413; the one
    5xx left is its answer to a deeply nested `POST /models` body, which our code never sees."""
    nested = "[" * NESTED_DEPTH + "]" * NESTED_DEPTH
    for route in ("/models/daily/invoke", "/invocations?model_name=daily"):
        answer = requests.post(f"{mms.url}{route}", data=nested, headers=JSON_HEADERS, timeout=30)
        assert_json_error(answer, 400, "bad_json")
    huge_url = "/" + "u" * (20 * 1024 * 1024)
    management = [
        mms.load("long-component", tmp_path / ("x" * 300) / "model"),
        requests.post(f"{mms.url}/invocations", data=b'{"period": 3}', headers=JSON_HEADERS, timeout=10),
        requests.post(
            f"{mms.url}/models",
            json={"model_name": "huge", "url": huge_url},
            timeout=60,
        ),
        requests.get(f"{mms.url}/nothing/here", timeout=10),
        requests.put(f"{mms.url}/models", timeout=10),
    ]
    for answer in management:
        assert 400 <= answer.status_code < 500, answer.text[:300]
        assert "<html" not in answer.text.lower() and "Traceback" not in answer.text
    # MMS's Java front parses the load request itself: JSON (its own shape), but a 500.
    nested_load = requests.post(f"{mms.url}/models", data=nested, headers=JSON_HEADERS, timeout=30)
    assert nested_load.json()["code"] == nested_load.status_code
    assert "Traceback" not in mms.log()
