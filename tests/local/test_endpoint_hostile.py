"""Hostile requests at the local endpoint, in front of the real lean server, over real HTTP.

Every refusal is boto3's error shape (JSON with `x-amzn-ErrorType`), a 4xx, and never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from fleetcast.local.container_client import ContainerClient
from fleetcast.local.endpoint import MultiModelEndpoint
from fleetcast.local.endpoint_http import RunningEndpoint, start_endpoint
from fleetcast.local.model_source import LocalFolderSource
from tests.local.test_endpoint import build_model
from tests.support.servers import start_lean

# Real server processes (or the aws CLI and a moto server) start here: not for `make test-fast`.
pytestmark = pytest.mark.slow

INVOKE = "/endpoints/fleetcast/invocations"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningEndpoint, Path]]:
    root = tmp_path_factory.mktemp("hostile-endpoint")
    models = root / "models"
    build_model(models, "0", 0)
    with start_lean(root, workers=2) as lean:
        endpoint = MultiModelEndpoint(LocalFolderSource(models), ContainerClient(lean.url), root / "cache")
        running = start_endpoint(endpoint)
        try:
            yield running, root
        finally:
            running.stop()


def post(running: RunningEndpoint, target: str | None, body: bytes, content_type: str = "application/json"):
    headers = {"Content-Type": content_type}
    if target is not None:
        headers["X-Amzn-SageMaker-Target-Model"] = target
    return requests.post(f"{running.url}{INVOKE}", data=body, headers=headers, timeout=60)


def assert_boto_error(answer: requests.Response, status: int, error_type: str) -> str:
    assert answer.status_code == status, answer.text[:500]
    assert answer.headers["x-amzn-ErrorType"] == error_type
    assert answer.headers["Content-Type"].startswith("application/json")
    assert "Traceback" not in answer.text and "<html" not in answer.text.lower()
    return answer.json()["Message"]


def test_a_307_character_target_model_component_is_a_validation_error(endpoint):
    running, _ = endpoint
    message = assert_boto_error(
        post(running, "x" * 300 + ".tar.gz", b'{"period": 2}'), 400, "ValidationError"
    )
    assert "255" in message


def test_the_sdk_default_octet_stream_works_through_the_endpoint(endpoint):
    running, _ = endpoint
    answer = post(running, "0.tar.gz", b'{"period": 2}', "application/octet-stream")
    assert answer.status_code == 200, answer.text
    assert answer.json()["customer"] == "0"
    refused = post(running, "0.tar.gz", b"not json", "application/octet-stream")
    message = assert_boto_error(refused, 424, "ModelError")
    assert "415" in message


def test_over_the_invoke_limit_and_unknown_routes_are_json(endpoint):
    running, _ = endpoint
    assert_boto_error(post(running, "0.tar.gz", b" " * (6 * 1024 * 1024 + 1)), 413, "ValidationError")
    assert_boto_error(requests.get(f"{running.url}/nothing", timeout=10), 400, "ValidationError")
    assert_boto_error(requests.put(f"{running.url}{INVOKE}", timeout=10), 400, "ValidationError")
