"""Real Multi Model Server (Java) in multi-model mode, started by `fleetcast serve` as SageMaker would.

One server for the whole module (start-up costs a few seconds); the last test stops it with SIGTERM.
"""

from __future__ import annotations

import json
import re
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
from tests.serving.models import BuiltModel, prophet_reference
from tests.support.servers import STARTUP_SECONDS, Server, start_mms

pytestmark = [pytest.mark.mms, pytest.mark.slow, pytest.mark.timeout(300)]

JSON_HEADERS = {"Content-Type": "application/json"}
SIGTERM_BUDGET_SECONDS = 30


def descendants(server: Server) -> list[psutil.Process]:
    return server.family()[1:]


def workers_of(server: Server, name: str) -> list[psutil.Process]:
    """The MMS worker processes serving the model `name`."""
    found = []
    for process in descendants(server):
        try:
            cmdline = process.cmdline()
        except psutil.Error:
            continue
        if "--model-name" in cmdline and cmdline[cmdline.index("--model-name") + 1] == name:
            found.append(process)
    return found


def running_server(root: Path, **extra_env: str) -> Server:
    """`FLEETCAST_SERVER=mms fleetcast serve`, answering /ping (use it as a context manager)."""
    require_java()
    return start_mms(root, extra_env)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The multi-model server every test here shares (SAGEMAKER_MULTI_MODEL defaults to true)."""
    with running_server(tmp_path_factory.mktemp("mms")) as running:
        yield running


def test_listens_on_loopback_only_with_our_settings(server):
    log = server.log()
    assert f"Inference address: {server.url}" in log
    assert "Default workers per model: 1" in log
    assert re.search(r"Max heap size: \d+ M", log) and "-Xmx" in log
    assert "/etc/sagemaker-mms.properties" not in log
    assert f"Maximum Request Size: {2 * 6 * 1024 * 1024}" in log  # above the handler's own 6 MiB cap


def test_load_list_describe_and_invoke(server, models):
    daily: BuiltModel = models["daily"]
    began = time.perf_counter()
    loaded = server.load("daily", daily.model_dir)
    print(f"POST /models took {time.perf_counter() - began:.2f} s")
    assert loaded.status_code == 200, loaded.text
    assert server.load("hourly", models["hourly"].model_dir).status_code == 200

    listed = requests.get(f"{server.url}/models", timeout=10).json()["models"]
    assert {(m["modelName"], m["modelUrl"]) for m in listed} >= {
        ("daily", str(daily.model_dir)),
        ("hourly", str(models["hourly"].model_dir)),
    }
    described = requests.get(f"{server.url}/models/daily", timeout=10)
    assert described.status_code == 200 and described.json()["modelName"] == "daily"
    assert len(workers_of(server, "daily")) >= 1  # one worker process per model

    answer = server.invoke("daily", json.dumps({"period": 7}))
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    body = answer.json()
    assert body["customer"] == "7" and len(body["forecast"]) == 7
    expected = prophet_reference(daily.model_dir, 7, "D", intervals=True)
    assert [row["ds"] for row in body["forecast"]] == [stamp.isoformat() for stamp in expected["ds"]]
    for column in ("yhat", "yhat_lower", "yhat_upper"):
        np.testing.assert_allclose([row[column] for row in body["forecast"]], expected[column], rtol=1e-9)


def test_hourly_model_without_intervals_and_the_double_encoded_request(server, models):
    body = json.dumps(json.dumps({"period": 24, "intervals": False}))  # the blog sample's form
    answer = server.invoke("hourly", body)
    assert answer.status_code == 200, answer.text
    rows = answer.json()["forecast"]
    assert len(rows) == 24 and set(rows[0]) == {"ds", "yhat"}
    expected = prophet_reference(models["hourly"].model_dir, 24, "h", intervals=False)
    np.testing.assert_allclose([row["yhat"] for row in rows], expected["yhat"], rtol=1e-9)


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b'{"period":', JSON_HEADERS, 400, "bad_json"),
        (b'{"period": 0}', JSON_HEADERS, 400, "bad_period"),
        (b'{"period": 9999}', JSON_HEADERS, 400, "bad_period"),
        (b'{"period": 7, "freq": "bogus"}', JSON_HEADERS, 400, "bad_freq"),
        (b'{"periods": 7}', JSON_HEADERS, 400, "unknown_field"),
        (b'{"period": 7}', {"Content-Type": "text/csv"}, 415, "unsupported_content_type"),
    ],
)
def test_bad_requests_come_back_as_json_errors(server, body, headers, status, code):
    answer = server.invoke("daily", body, headers)
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.json()["error"] == code and answer.json()["message"]


def test_payload_over_the_cap_is_a_json_413(server):
    # MMS's own frame limit is set above the handler's cap, so the handler answers, in JSON.
    cap = 6 * 1024 * 1024
    body = b'{"period": 7}' + b" " * (cap + 100_000)
    answer = server.invoke("daily", body)
    assert answer.status_code == 413, answer.text[:500]
    assert answer.json()["error"] == "payload_too_large"
    assert f"the limit is {cap} bytes" in answer.json()["message"]
    assert server.invoke("daily", b'{"period": 7}' + b" " * (cap - 100)).status_code == 200


def test_second_load_of_a_loaded_model_is_409(server, models):
    answer = server.load("daily", models["daily"].model_dir)
    assert answer.status_code == 409, answer.text


# Unknown, corrupt and missing models: tests/serving/test_mme_contract.py runs those against MMS too.


def test_delete_unloads_and_frees_the_worker(server, models, tmp_path):
    model_dir = tmp_path / "copy" / "model"
    shutil.copytree(models["daily"].model_dir, model_dir)
    assert server.load("short-lived", model_dir).status_code == 200
    assert server.invoke("short-lived", b'{"period": 2}').status_code == 200
    workers = workers_of(server, "short-lived")
    assert workers
    deleted = requests.delete(f"{server.url}/models/short-lived", timeout=30)
    assert deleted.status_code == 200, deleted.text
    assert requests.get(f"{server.url}/models/short-lived", timeout=10).status_code == 404
    assert server.invoke("short-lived", b'{"period": 2}').status_code == 404
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"worker processes still running after DELETE: {[p.pid for p in alive]}"
    # and the name can be loaded again
    assert server.load("short-lived", model_dir).status_code == 200


def processes_using(run_dir: str) -> list[str]:
    """Every process on the machine whose command line mentions this server's private run dir."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if run_dir in cmdline:
            found.append(f"{process.info['pid']}: {cmdline[:200]}")
    return found


def test_sigterm_stops_mms_and_every_worker_within_30_s(server, models, tmp_path):
    model_dir = tmp_path / "last" / "model"
    shutil.copytree(models["daily"].model_dir, model_dir)
    assert server.load("last", model_dir).status_code == 200
    family = descendants(server)
    assert not [p for p in family if p.status() == psutil.STATUS_ZOMBIE], "the MMS launcher was not reaped"
    java = [p for p in family if "com.amazonaws.ml.mms.ModelServer" in p.cmdline()]
    workers = [p for p in family if "model_service_worker.py" in " ".join(p.cmdline())]
    assert java and workers_of(server, "last") and len(workers) >= len(workers_of(server, "last"))
    run_dir = re.search(r"Temp directory: (\S+)", server.log()).group(1)
    assert Path(run_dir).is_dir()

    began = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(SIGTERM_BUDGET_SECONDS)
    took = time.monotonic() - began
    print(f"serve exited {code} {took:.1f} s after SIGTERM")
    assert code == 0, server.log()[-3000:]
    _, alive = psutil.wait_procs(family, timeout=2)
    assert not alive, f"orphaned after SIGTERM: {[(p.pid, p.cmdline()[:3]) for p in alive]}"
    assert not processes_using(run_dir)
    assert not Path(run_dir).exists()
    assert "Multi Model Server stopped" in server.log()


def test_single_model_mode_serves_opt_ml_model_at_invocations(models, tmp_path):
    """SAGEMAKER_MULTI_MODEL=false: the classic single-model contract (/opt/ml/model, POST /invocations)."""
    shutil.copytree(models["daily"].model_dir, tmp_path / "opt_ml" / "model")
    with running_server(tmp_path, SAGEMAKER_MULTI_MODEL="false") as single:
        answer = requests.post(
            f"{single.url}/invocations", data=b'{"period": 3}', headers=JSON_HEADERS, timeout=60
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["customer"] == "7" and len(answer.json()["forecast"]) == 3
        single.process.send_signal(signal.SIGTERM)
        assert single.process.wait(SIGTERM_BUDGET_SECONDS) == 0


def test_sigterm_while_mms_is_still_starting_leaves_nothing_behind(tmp_path):
    require_java()
    with start_mms(tmp_path, wait=False) as server:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not (match := re.search(r"--mms-config', '(/[^']+)/sagemaker-mms.properties", server.log())):
            assert server.process.poll() is None, server.log()
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.02)
        run_dir = match.group(1)
        server.process.send_signal(signal.SIGTERM)  # the launcher is starting Java right now
        assert server.process.wait(SIGTERM_BUDGET_SECONDS) == 0, server.log()
        time.sleep(1)  # anything orphaned would now be running on its own
        assert not processes_using(run_dir), server.log()
        assert not Path(run_dir).exists()


def test_load_without_enough_memory_is_507(models, tmp_path):
    """The contract's out-of-memory answer, so the platform unloads idle models and retries.

    MMS may keep the refused name registered without a worker (a retry then gets 409, an invoke 503)
    or forget it, depending on timing: a platform must DELETE the name after a 507 before retrying.
    """
    with running_server(tmp_path, FLEETCAST_MIN_FREE_MB=str(10**9)) as short:
        for _ in range(2):
            answer = short.load("daily", models["daily"].model_dir)
            # MMS may still hold the failed name for a moment (409) before it forgets it
            assert answer.status_code in (507, 409), answer.text
        assert "refusing to load another model (507): only" in short.log()
        assert requests.delete(f"{short.url}/models/daily", timeout=30).status_code in (200, 404)
        assert short.load("daily", models["daily"].model_dir).status_code == 507
        assert short.invoke("daily", b'{"period": 1}').status_code in (404, 503)
        deadline = time.monotonic() + 10
        while workers_of(short, "daily") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not workers_of(short, "daily")  # no worker left running for the refused model
        short.process.send_signal(signal.SIGTERM)
        assert short.process.wait(SIGTERM_BUDGET_SECONDS) == 0


def test_worker_count_per_model_follows_the_sagemaker_setting(models, tmp_path):
    with running_server(tmp_path, SAGEMAKER_MODEL_SERVER_WORKERS="2") as two:
        assert "Default workers per model: 2" in two.log()
        assert two.load("daily", models["daily"].model_dir).status_code == 200
        described = requests.get(f"{two.url}/models/daily", timeout=10).json()
        assert len(described["workers"]) == 2
        assert {two.invoke("daily", b'{"period": 2}').status_code for _ in range(4)} == {200}
        two.process.send_signal(signal.SIGTERM)
        assert two.process.wait(SIGTERM_BUDGET_SECONDS) == 0
