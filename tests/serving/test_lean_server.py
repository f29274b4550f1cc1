"""The lean server: in-process through Flask's test client, and as the real multi-worker gunicorn server.

The MME contract itself (shared with MMS) is tests/serving/test_mme_contract.py; this file covers what only
the lean server has: models shared across worker processes, DELETE everywhere, the memory budget (507),
single-model /invocations, the Prophet fallback, and a clean stop with keep-alive connections open.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import requests

from fleetcast.model import archive
from fleetcast.model.prophet_model import model_to_json
from fleetcast.serving.environment import Limits
from fleetcast.serving.lean.app import WORKER_HEADER, LeanServer, create_app
from fleetcast.serving.lean.budget import MemoryBudget
from fleetcast.serving.lean.registry import SharedRegistry
from fleetcast.serving.memory import server_rss_bytes
from tests.serving.models import daily_history, extract, prophet_reference
from tests.support.servers import JSON_HEADERS, Server, ServerStartError, start_lean

TARGET = "X-Amzn-SageMaker-Target-Model"
BIG_BUDGET = MemoryBudget(limit_bytes=1 << 40, baseline_bytes=0, workers=1)


def make_server(tmp_path: Path, budget: MemoryBudget = BIG_BUDGET) -> LeanServer:
    return LeanServer(SharedRegistry(tmp_path / "registry"), 1, budget, Limits())


@pytest.fixture
def lean(tmp_path):
    server = make_server(tmp_path)
    yield server, create_app(server).test_client()
    server.registry.close()


def load(client, name: str, url: Path | str):
    return client.post("/models", json={"model_name": name, "url": str(url)})


# ---- in process --------------------------------------------------------------------------------------


def test_two_workers_share_loads_and_unloads(tmp_path, models):
    """Two LeanServers on one registry behave as two worker processes do (the real fork is tested below)."""
    registry = SharedRegistry(tmp_path / "registry")
    try:
        first, second = (LeanServer(registry, 2, BIG_BUDGET, Limits()) for _ in range(2))
        a, b = create_app(first).test_client(), create_app(second).test_client()
        assert load(a, "daily", models["daily"].model_dir).status_code == 200
        answer = b.post("/models/daily/invoke", json={"period": 3})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert answer.get_json() == a.post("/models/daily/invoke", json={"period": 3}).get_json()
        assert "daily" in second.models.local

        assert load(b, "daily", models["daily"].model_dir).status_code == 409
        assert b.delete("/models/daily").status_code == 200
        assert a.post("/models/daily/invoke", json={"period": 3}).status_code == 404
        assert "daily" not in first.models.local and "daily" not in second.models.local
    finally:
        registry.close()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"[1, 2]", 400),
        (b'{"model_name": "m"}', 400),
        (b'{"url": "/x"}', 400),
        (b'{"model_name": "", "url": "/x"}', 400),
        (b'{"model_name": "m", "url": 7}', 400),
    ],
)
def test_bad_load_requests_are_400_with_a_message(lean, body, status):
    _, client = lean
    answer = client.post("/models", data=body, headers=JSON_HEADERS)
    assert answer.status_code == status
    assert answer.get_json()["message"]


def test_model_names_with_slashes_and_dots(lean, models):
    _, client = lean
    for name in ("7.tar.gz", "a/b", "sp ace"):
        assert load(client, name, models["daily"].model_dir).status_code == 200, name
    assert client.post("/models/a/b/invoke", json={"period": 1}).status_code == 200
    assert client.get("/models/7.tar.gz").get_json()["modelName"] == "7.tar.gz"
    assert sorted(m["modelName"] for m in client.get("/models").get_json()["models"]) == [
        "7.tar.gz",
        "a/b",
        "sp ace",
    ]
    assert client.delete("/models/a/b").status_code == 200


def test_over_budget_load_is_507_and_changes_nothing(tmp_path, models, caplog):
    server = make_server(tmp_path, MemoryBudget(limit_bytes=1, baseline_bytes=0, workers=1))
    try:
        client = create_app(server).test_client()
        with caplog.at_level(logging.WARNING):
            answer = load(client, "daily", models["daily"].model_dir)
        assert answer.status_code == 507
        assert answer.get_json()["error"] == "insufficient_memory"
        assert "FLEETCAST_MEMORY_MB" in answer.get_json()["message"]
        assert client.get("/models").get_json()["models"] == []
        assert server.registry.estimate_total == 0
        assert "not loaded" in caplog.text
    finally:
        server.registry.close()


def test_budget_admits_until_full(tmp_path, models):
    """Room for two and a half models beyond the (stable) measured process: the third load is a 507."""
    probe = make_server(tmp_path / "probe")
    assert load(create_app(probe).test_client(), "one", models["daily"].model_dir).status_code == 200
    estimate = probe.registry.read("one").estimate_bytes
    probe.registry.close()

    stand_in = subprocess.Popen(["sleep", "60"])  # a server process whose RSS does not move
    try:
        time.sleep(0.2)
        rss = server_rss_bytes(stand_in.pid)
        budget = MemoryBudget(limit_bytes=rss + int(2.5 * estimate), baseline_bytes=rss, workers=1)
        server = make_server(tmp_path / "budget", budget)
        server.root_pid = stand_in.pid
        client = create_app(server).test_client()
        statuses = [load(client, f"m{i}", models["daily"].model_dir).status_code for i in range(3)]
        assert statuses == [200, 200, 507]
        assert client.delete("/models/m0").status_code == 200
        assert load(client, "m2", models["daily"].model_dir).status_code == 200  # room again
        server.registry.close()
    finally:
        stand_in.kill()
        stand_in.wait(10)


def test_single_model_invocations(tmp_path, models, monkeypatch):
    base = tmp_path / "opt_ml"
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    shutil.copytree(models["daily"].model_dir, base / "model")
    server = make_server(tmp_path)
    server.multi_model = False
    try:
        client = create_app(server).test_client()
        answer = client.post("/invocations", json={"period": 5})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        rows = answer.get_json()["forecast"]
        expected = prophet_reference(models["daily"].model_dir, 5, "D", intervals=True)
        np.testing.assert_allclose([r["yhat"] for r in rows], expected["yhat"], rtol=1e-9)
        assert client.post("/invocations", data=b"{", headers=JSON_HEADERS).status_code == 400
        # The TargetModel header, when sent, must name this customer's archive: never another's forecast.
        mine = client.post("/invocations", json={"period": 2}, headers={TARGET: "7.tar.gz"})
        assert mine.status_code == 200 and mine.get_json()["customer"] == "7"
        other = client.post("/invocations", json={"period": 2}, headers={TARGET: "3.tar.gz"})
        assert other.status_code == 400 and other.get_json()["error"] == "target_model_mismatch"
    finally:
        server.registry.close()


def test_single_model_missing_is_a_json_500(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "empty"))
    server = make_server(tmp_path)
    server.multi_model = False
    try:
        answer = create_app(server).test_client().post("/invocations", json={"period": 5})
        assert answer.status_code == 500
        assert answer.get_json()["error"] == "model_missing"
        assert str(tmp_path / "empty" / "model") in answer.get_json()["message"]
    finally:
        server.registry.close()


def test_unknown_route_and_method_are_json(lean):
    _, client = lean
    assert client.get("/nope").get_json()["error"] == "not_found"
    answer = client.put("/models")
    assert answer.status_code == 405 and answer.get_json()["error"] == "method_not_allowed"


@pytest.fixture(scope="module")
def holiday_model(tmp_path_factory):
    """A model the compiled predictor refuses (a custom holidays frame), fitted for real."""
    from prophet import Prophet

    root = tmp_path_factory.mktemp("holiday")
    history = daily_history(11)
    holidays = pd.DataFrame(
        {"holiday": "fair", "ds": pd.to_datetime(["2022-02-14", "2022-04-18", "2022-05-02"])}
    )
    model = Prophet(holidays=holidays, uncertainty_samples=200)
    model.fit(history)
    metadata = {"customer": "11", "end": history["ds"].iloc[-1].isoformat(), "freq": "D"}
    archive_path = archive.write_archive(root / "archives", "11", model_to_json(model), metadata)
    return extract(archive_path, root / "models" / "m-11" / "model")


def test_model_the_compiled_predictor_refuses_is_served_by_prophet_loudly(lean, holiday_model, caplog):
    _, client = lean
    with caplog.at_level(logging.WARNING, logger="fleetcast.serving"):
        assert load(client, "holiday", holiday_model).status_code == 200
    assert "does not cover a custom holidays frame" in caplog.text and "Prophet" in caplog.text
    assert client.get("/models/holiday").get_json()["predictor"] == "prophet"
    answer = client.post("/models/holiday/invoke", json={"period": 4, "intervals": False})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    expected = prophet_reference(holiday_model, 4, "D", intervals=False)
    np.testing.assert_allclose(
        [r["yhat"] for r in answer.get_json()["forecast"]], expected["yhat"], rtol=1e-9
    )


# ---- the real server: gunicorn with two worker processes ------------------------------------------------


@pytest.fixture(scope="module")
def lean_process(tmp_path_factory):
    with start_lean(tmp_path_factory.mktemp("lean-process"), workers=2) as server:
        yield server


def fresh_invoke(server: Server, name: str) -> tuple[int, str]:
    """A new connection per call, so gunicorn hands calls to different workers."""
    answer = requests.post(
        f"{server.url}/models/{name}/invoke",
        data=b'{"period": 2}',
        headers={**JSON_HEADERS, "Connection": "close"},
        timeout=30,
    )
    return answer.status_code, answer.headers.get(WORKER_HEADER, "")


def invoke_until_every_worker_answers(server: Server, name: str, workers: set[int]) -> list[tuple[int, str]]:
    """At least 40 fresh calls, and more (up to 400) until each worker has answered one: which worker
    accepts a connection is up to the kernel, and under load one can take a long run of them."""
    answers: list[tuple[int, str]] = []
    while len(answers) < 400 and (len(answers) < 40 or {int(pid) for _, pid in answers} != workers):
        answers.append(fresh_invoke(server, name))
    return answers


def test_a_model_loaded_through_one_worker_answers_through_every_worker(lean_process, models):
    deadline = time.monotonic() + 20
    workers: list[int] = []
    while len(workers) < 2 and time.monotonic() < deadline:  # gunicorn forks its workers one by one
        workers = [p.pid for p in psutil.Process(lean_process.process.pid).children()]
        time.sleep(0.1)
    assert len(workers) == 2
    assert lean_process.load("shared", models["daily"].model_dir).status_code == 200
    answers = invoke_until_every_worker_answers(lean_process, "shared", set(workers))
    assert {status for status, _ in answers} == {200}
    assert {int(pid) for _, pid in answers} == set(workers), "requests did not reach both workers"

    deleted = requests.delete(f"{lean_process.url}/models/shared", timeout=30)
    assert deleted.status_code == 200
    answers = invoke_until_every_worker_answers(lean_process, "shared", set(workers))
    assert {status for status, _ in answers} == {404}
    assert {int(pid) for _, pid in answers} == set(workers)


@pytest.mark.slow
def test_sigterm_with_keep_alive_connections_open(lean_process, models):
    assert lean_process.load("kept", models["daily"].model_dir).status_code == 200
    connections = []
    for _ in range(6):
        connection = http.client.HTTPConnection("127.0.0.1", lean_process.port, timeout=10)
        connection.request("POST", "/models/kept/invoke", body=b'{"period": 1}', headers=JSON_HEADERS)
        assert connection.getresponse().read()
        connections.append(connection)  # left open: idle keep-alive connections, as the platform holds
    registry_dir = Path(re.search(r"model registry in (\S+) ", lean_process.log()).group(1))
    assert registry_dir.is_dir()
    family = lean_process.family()
    began = time.monotonic()
    lean_process.process.send_signal(signal.SIGTERM)
    code = lean_process.process.wait(30)
    took = time.monotonic() - began
    print(f"lean server exited {code} {took:.1f} s after SIGTERM with 6 idle keep-alive connections")
    assert code == 0
    _, alive = psutil.wait_procs(family, timeout=2)
    assert not alive
    assert "lean server stopped" in lean_process.log()
    assert not registry_dir.exists()
    for connection in connections:
        with contextlib.suppress(OSError):
            connection.close()


@pytest.mark.slow
def test_memory_budget_from_the_environment(tmp_path, models):
    with start_lean(tmp_path, {"FLEETCAST_MEMORY_MB": "1"}, workers=2) as server:
        answer = server.load("daily", models["daily"].model_dir)
        assert answer.status_code == 507
        assert "memory budget of 1 MB" in answer.json()["message"]


@pytest.mark.slow
def test_single_model_mode_serves_opt_ml_model(tmp_path, models):
    shutil.copytree(models["daily"].model_dir, tmp_path / "opt_ml" / "model")
    with start_lean(tmp_path, {"SAGEMAKER_MULTI_MODEL": "false"}, workers=2) as server:
        answer = requests.post(
            f"{server.url}/invocations", data=json.dumps({"period": 3}), headers=JSON_HEADERS
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["customer"] == models["daily"].customer


def test_single_model_mode_without_a_model_fails_at_start(tmp_path):
    with pytest.raises(ServerStartError, match="exited with 1"):
        start_lean(tmp_path, {"SAGEMAKER_MULTI_MODEL": "false"})
