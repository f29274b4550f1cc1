"""The SageMaker multi-model container API, one suite run against both servers `fleetcast serve` offers.

Each server is the real `fleetcast serve` subprocess (FLEETCAST_SERVER=mms|lean), started by
tests/support/servers.py on a loopback port only it holds, with SAGEMAKER_BASE_DIR in a temp dir.
Where the two servers legitimately differ, the test says how:

- a corrupt model: MMS swallows the handler's load error, so `POST /models` answers 200 and every
  invoke answers the JSON 400 naming the problem; the lean server loads at `POST /models` and refuses it
  there with the same JSON 400 (SageMaker surfaces either to the caller; failing at load time is the
  earlier, clearer signal);
- `GET /models/<name>`: MMS describes workers and batch settings, the lean server the predictor kind.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests

from tests.helpers import require_java
from tests.serving.models import WRONG_TYPED_FIELDS, BuiltModel, prophet_reference, wrong_typed_model
from tests.support.servers import Server, start_lean, start_mms

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

JSON_HEADERS = {"Content-Type": "application/json"}
SIGTERM_BUDGET_SECONDS = 30
PAGINATED_MODELS = 5
LEAN_WORKERS = 2  # exercise the cross-worker registry on any machine


@pytest.fixture(scope="module", params=[pytest.param("mms", marks=pytest.mark.mms), "lean"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "mms":
        require_java()
        running = start_mms(root)
    else:
        running = start_lean(root, workers=LEAN_WORKERS)
    with running:
        yield running


def test_ping(server):
    answer = requests.get(f"{server.url}/ping", timeout=5)
    assert answer.status_code == 200


def test_load_list_describe_invoke(server, models):
    daily: BuiltModel = models["daily"]
    loaded = server.load("daily", daily.model_dir)
    assert loaded.status_code == 200, loaded.text

    listed = requests.get(f"{server.url}/models", timeout=10).json()
    assert {"modelName": "daily", "modelUrl": str(daily.model_dir)} in listed["models"]
    described = requests.get(f"{server.url}/models/daily", timeout=10)
    assert described.status_code == 200 and described.json()["modelName"] == "daily"

    answer = server.invoke("daily", json.dumps({"period": 7}))
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    body = answer.json()
    assert body["customer"] == daily.customer and len(body["forecast"]) == 7
    expected = prophet_reference(daily.model_dir, 7, "D", intervals=True)
    assert [row["ds"] for row in body["forecast"]] == [stamp.isoformat() for stamp in expected["ds"]]
    # Both servers replay the random stream Prophet's own predict draws (seeded per request), so even the
    # interval bounds are Prophet's.
    for column in ("yhat", "yhat_lower", "yhat_upper"):
        np.testing.assert_allclose([row[column] for row in body["forecast"]], expected[column], rtol=1e-9)
    # The same request gives the same answer (a seeded draw), whichever worker takes it.
    assert server.invoke("daily", json.dumps({"period": 7})).json() == body


def test_second_load_is_409(server, models):
    answer = server.load("daily", models["daily"].model_dir)
    assert answer.status_code == 409, answer.text
    assert answer.json()["message"]


def test_model_list_is_paginated(server, models):
    names = [f"page-{index}" for index in range(PAGINATED_MODELS)]
    for name in names:
        assert server.load(name, models["hourly"].model_dir).status_code == 200
    everything = sorted(["daily", *names])

    seen: list[str] = []
    token = None
    for _ in range(10):
        params = {"limit": "2", **({"next_page_token": token} if token else {})}
        page = requests.get(f"{server.url}/models", params=params, timeout=10).json()
        assert len(page["models"]) <= 2
        seen += [model["modelName"] for model in page["models"]]
        token = page.get("nextPageToken")
        if not token:
            break
    assert sorted(seen) == everything, seen
    assert seen == sorted(seen)  # pages come in name order
    first = requests.get(f"{server.url}/models", params={"limit": "3"}, timeout=10).json()
    assert first["nextPageToken"] == "3" and len(first["models"]) == 3
    # A bad limit falls back to the default page (MMS's behaviour), it does not fail.
    assert requests.get(f"{server.url}/models", params={"limit": "x"}, timeout=10).status_code == 200


def test_unknown_model_is_404_everywhere(server):
    assert server.invoke("nobody", b'{"period": 1}').status_code == 404
    assert requests.get(f"{server.url}/models/nobody", timeout=10).status_code == 404
    assert requests.delete(f"{server.url}/models/nobody", timeout=10).status_code == 404


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b'{"period":', JSON_HEADERS, 400, "bad_json"),
        (b'{"period": 0}', JSON_HEADERS, 400, "bad_period"),
        (b'{"period": 7, "freq": "bogus"}', JSON_HEADERS, 400, "bad_freq"),
        (b'{"periods": 7}', JSON_HEADERS, 400, "unknown_field"),
        (b'{"period": 7}', {"Content-Type": "text/csv"}, 415, "unsupported_content_type"),
    ],
)
def test_bad_requests_are_json_errors(server, body, headers, status, code):
    answer = server.invoke("daily", body, headers)
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.json()["error"] == code and answer.json()["message"]


def test_hourly_model_without_intervals(server, models):
    answer = server.invoke("page-0", json.dumps(json.dumps({"period": 24, "intervals": False})))
    assert answer.status_code == 200, answer.text
    rows = answer.json()["forecast"]
    assert len(rows) == 24 and set(rows[0]) == {"ds", "yhat"}
    expected = prophet_reference(models["hourly"].model_dir, 24, "h", intervals=False)
    np.testing.assert_allclose([row["yhat"] for row in rows], expected["yhat"], rtol=1e-9)


def truncated(source: Path, target: Path) -> Path:
    model_dir = shutil.copytree(source, target)
    text = (model_dir / "model.json").read_text()
    (model_dir / "model.json").write_text(text[: len(text) // 3])  # a truncated download
    (model_dir / "compiled.json").unlink(missing_ok=True)
    return model_dir


CORRUPTIONS = {
    "truncated": (truncated, "checksum"),
    **{
        f"wrong-typed-{field}": (lambda s, t, f=field: wrong_typed_model(s, t, WRONG_TYPED_FIELDS[f]), "type")
        for field in WRONG_TYPED_FIELDS
    },
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_corrupt_model_is_a_clean_json_400(server, models, tmp_path, corruption):
    corrupt, named = CORRUPTIONS[corruption]
    model_dir = corrupt(models["daily"].model_dir, tmp_path / "corrupt" / "model")
    name = f"corrupt-{corruption}"
    loaded = server.load(name, model_dir)
    if server.kind == "mms":
        assert loaded.status_code == 200  # MMS swallows the load error, so it comes with each invoke
        answer = server.invoke(name, b'{"period": 3}')
        requests.delete(f"{server.url}/models/{name}", timeout=30)
    else:
        answer = loaded  # the lean server loads now and refuses it now
        assert requests.get(f"{server.url}/models/{name}", timeout=10).status_code == 404
    assert answer.status_code == 400, answer.text[:500]
    assert answer.headers["Content-Type"].startswith("application/json")
    error = answer.json()
    assert error["error"] == "model_invalid"
    assert str(model_dir) in error["message"] and named in error["message"]
    assert "Traceback" not in answer.text


def test_missing_model_directory_is_404_at_load(server, tmp_path):
    answer = server.load("ghost", tmp_path / "ghost" / "model")
    assert answer.status_code == 404, answer.text


def test_delete_unloads(server, models, tmp_path):
    model_dir = tmp_path / "copy" / "model"
    shutil.copytree(models["daily"].model_dir, model_dir)
    assert server.load("short-lived", model_dir).status_code == 200
    assert server.invoke("short-lived", b'{"period": 2}').status_code == 200
    deleted = requests.delete(f"{server.url}/models/short-lived", timeout=30)
    assert deleted.status_code == 200, deleted.text
    assert requests.get(f"{server.url}/models/short-lived", timeout=10).status_code == 404
    # Fresh connections reach every worker of a multi-worker server: none may still answer.
    for _ in range(8):
        assert server.invoke("short-lived", b'{"period": 2}').status_code == 404
    assert "short-lived" not in [
        m["modelName"] for m in requests.get(f"{server.url}/models", timeout=10).json()["models"]
    ]
    assert server.load("short-lived", model_dir).status_code == 200  # and the name can be loaded again
    assert server.invoke("short-lived", b'{"period": 2}').status_code == 200


def test_sigterm_stops_everything_within_30_s(server):
    family = server.family()
    assert len(family) >= 2  # the serve process and at least one worker
    began = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(SIGTERM_BUDGET_SECONDS)
    took = time.monotonic() - began
    print(f"{server.kind}: serve exited {code} {took:.1f} s after SIGTERM")
    assert code == 0, server.log()[-3000:]
    _, alive = psutil.wait_procs(family, timeout=2)
    assert not alive, f"orphaned after SIGTERM: {[(p.pid, p.cmdline()[:3]) for p in alive]}"
