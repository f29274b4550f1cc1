"""`POST /invocations` on both servers, in both modes: the same answers from lean and MMS.

- single-model mode (SAGEMAKER_MULTI_MODEL=false) serves /opt/ml/model; a TargetModel header that names
  another customer's archive is a 400 `target_model_mismatch` (never that other forecast);
- a JSON body sent as `application/octet-stream` (the SageMaker Python SDK's default) is served, a
  non-JSON one is a 415;
- multi-model mode answers /invocations without `?model_name=` with a clear 400.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
import requests

from fleetcast.serving.environment import MULTI_MODEL_ENV
from tests.helpers import require_java
from tests.support.servers import JSON_HEADERS, Server, start_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
SERVERS = [pytest.param("mms", marks=pytest.mark.mms), "lean"]
TARGET = "X-Amzn-SageMaker-Target-Model"
OPAQUE_NAME = "opaque-7f3a"  # SageMaker's model_name is not the TargetModel string


def _start(kind: str, root, env) -> Server:
    if kind == "mms":
        require_java()
    return start_server(kind, root, env, **({"workers": 2} if kind == "lean" else {}))


@pytest.fixture(scope="module", params=SERVERS)
def single(request, tmp_path_factory, models) -> Iterator[Server]:
    root = tmp_path_factory.mktemp(f"single-{request.param}")
    shutil.copytree(models["daily"].model_dir, root / "opt_ml" / "model")
    with _start(request.param, root, {MULTI_MODEL_ENV: "false"}) as server:
        yield server


@pytest.fixture(scope="module", params=SERVERS)
def multi(request, tmp_path_factory, models) -> Iterator[Server]:
    """A multi-model server holding customer 7's daily model under the opaque name the platform picks."""
    with _start(
        request.param, tmp_path_factory.mktemp(f"multi-{request.param}"), {MULTI_MODEL_ENV: "true"}
    ) as server:
        assert server.load(OPAQUE_NAME, models["daily"].model_dir).status_code == 200
        yield server


def invocations(server: Server, body: bytes, headers: dict[str, str], query: str = "") -> requests.Response:
    return requests.post(f"{server.url}/invocations{query}", data=body, headers=headers, timeout=60)


@pytest.mark.parametrize("target", [None, "7.tar.gz", "models/eu/7.tar.gz"])
def test_single_model_serves_its_model_for_no_or_a_matching_target(single, target):
    headers = {**JSON_HEADERS, **({TARGET: target} if target else {})}
    answer = invocations(single, b'{"period": 3}', headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["customer"] == "7" and len(answer.json()["forecast"]) == 3


def test_single_model_refuses_a_target_naming_another_model(single):
    answer = invocations(single, b'{"period": 3}', {**JSON_HEADERS, TARGET: "3.tar.gz"})
    assert answer.status_code == 400, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.json()["error"] == "target_model_mismatch"
    assert "3.tar.gz" in answer.json()["message"]


def test_octet_stream_json_is_served_and_anything_else_is_415(single):
    octet = {"Content-Type": "application/octet-stream"}
    answer = invocations(single, b'{"period": 2}', octet)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["forecast"]) == 2
    refused = invocations(single, b"period=2", octet)
    assert refused.status_code == 415, refused.text
    assert refused.json()["error"] == "unsupported_content_type"


def test_multi_model_invocations_without_a_model_name_is_a_clear_400(multi):
    answer = invocations(multi, b'{"period": 3}', {**JSON_HEADERS, TARGET: "7.tar.gz"})
    assert answer.status_code == 400, answer.text
    assert "model_name" in answer.text
    named = invocations(multi, b'{"period": 3}', JSON_HEADERS, f"?model_name={OPAQUE_NAME}")
    assert named.status_code == 200, named.text
    assert named.json()["customer"] == "7"


def test_the_platform_route_never_answers_for_another_model(multi):
    """/models/<name>/invoke as SageMaker calls it: the TargetModel header names the archive it loaded."""
    url = f"{multi.url}/models/{OPAQUE_NAME}/invoke"
    ok = requests.post(url, data=b'{"period": 2}', headers={**JSON_HEADERS, TARGET: "prefix/7.tar.gz"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["customer"] == "7"
    other = requests.post(url, data=b'{"period": 2}', headers={**JSON_HEADERS, TARGET: "3.tar.gz"})
    assert other.status_code == 400, other.text
    assert other.json()["error"] == "target_model_mismatch"
