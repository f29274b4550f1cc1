"""Hostile requests at the local endpoint, in front of each real server (lean and MMS), over real HTTP.

Every refusal is boto3's error shape (JSON with `x-amzn-ErrorType`), a 4xx, and never a traceback; what
the container refuses reaches the caller as a ModelError carrying the container's own 4xx.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from fleetcast.local.container_client import ContainerClient
from fleetcast.local.endpoint import MultiModelEndpoint
from fleetcast.local.endpoint_http import RunningEndpoint, start_endpoint
from fleetcast.local.model_source import LocalFolderSource
from fleetcast.model.archive import sha256_text
from tests.helpers import require_java
from tests.local.test_endpoint import build_model
from tests.serving.models import WRONG_TYPED_FIELDS, extract
from tests.support.servers import start_server

# Real server processes (or the aws CLI and a moto server) start here: not for `make test-fast`.
pytestmark = pytest.mark.slow

INVOKE = "/endpoints/fleetcast/invocations"


def wrong_typed_archive(source: Path, target: Path, field: str) -> Path:
    """`source` with a wrong-typed model.json field (its checksum made consistent again), as `target`."""
    model_dir = extract(source, target.parent.parent / f"work-{target.name}")
    data = json.loads((model_dir / "model.json").read_text())
    WRONG_TYPED_FIELDS[field](data)
    text = json.dumps(data)
    metadata = json.loads((model_dir / "metadata.json").read_text())
    metadata["model_sha256"] = sha256_text(text)
    (model_dir / "model.json").write_text(text)
    (model_dir / "metadata.json").write_text(json.dumps(metadata))
    with tarfile.open(target, "w:gz") as tar:
        for name in ("model.json", "metadata.json"):
            tar.add(model_dir / name, arcname=name)
    return target


@pytest.fixture(scope="module", params=[pytest.param("mms", marks=pytest.mark.mms), "lean"])
def endpoint(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningEndpoint, Path]]:
    if request.param == "mms":
        require_java()
    root = tmp_path_factory.mktemp(f"hostile-endpoint-{request.param}")
    models = root / "models"
    build_model(models, "0", 0)
    for field in WRONG_TYPED_FIELDS:
        wrong_typed_archive(models / "0.tar.gz", models / f"wrong-{field}.tar.gz", field)
    options = {"workers": 2} if request.param == "lean" else {}
    with start_server(request.param, root, {"SAGEMAKER_MULTI_MODEL": "true"}, **options) as server:
        endpoint = MultiModelEndpoint(LocalFolderSource(models), ContainerClient(server.url), root / "cache")
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


@pytest.mark.parametrize("field", sorted(WRONG_TYPED_FIELDS))
def test_a_model_json_with_wrong_typed_fields_is_a_model_error_carrying_a_4xx(endpoint, field):
    running, _ = endpoint
    for _ in range(2):  # the lean server refuses the load; MMS loads it and refuses each invoke
        answer = post(running, f"wrong-{field}.tar.gz", b'{"period": 2}')
        message = assert_boto_error(answer, 424, "ModelError")
        assert answer.json()["OriginalStatusCode"] == 400, message
        assert "model_invalid" in message
