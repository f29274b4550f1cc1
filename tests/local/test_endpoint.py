"""The local multi-model endpoint through real boto3 `sagemaker-runtime`, in front of each real server.

The suite runs twice: in front of Multi Model Server (Java, the reference; marked `mms`) and in front of
the lean server (the default). One `fleetcast serve` runs per server kind for the module
(tests/support/servers.py); each test starts its own endpoint in-process on port 0 and unloads whatever
it loaded afterwards; one test runs the `fleetcast local-endpoint` command itself. The only stand-in
peer is the 507 test's tiny HTTP server: MMS has no way to be made to answer 507, which the SageMaker
platform must handle.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest
import urllib3
from botocore.config import Config

from fleetcast.client import format_table, invoke_main, request_forecast
from fleetcast.local.cache_policy import CachePolicy
from fleetcast.local.container_client import ContainerClient
from fleetcast.local.endpoint import MultiModelEndpoint
from fleetcast.local.endpoint_http import RunningEndpoint, start_endpoint
from fleetcast.local.model_cache import model_id
from fleetcast.local.model_source import LocalFolderSource, ModelSource, S3Source
from fleetcast.model import manifest
from fleetcast.model.archive import read_archive
from fleetcast.model.prophet_model import model_from_json
from fleetcast.model.settings import ProphetSettings
from fleetcast.plot import plot_main
from tests.helpers import require_java
from tests.serving.models import archive_model
from tests.support.servers import refused_port, start_local_endpoint, start_server

# Real server processes (or the aws CLI and a moto server) start here: not for `make test-fast`.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CUSTOMERS = ("0", "1", "2", "3")
HISTORY_ROWS = 120


# ------------------------------------------------------------------ models
def build_model(directory: Path, customer: str, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2022-01-01", periods=HISTORY_ROWS, freq="D")
    y = 200 + 20 * np.sin(2 * np.pi * np.arange(HISTORY_ROWS) / 7) + rng.normal(0, 3, HISTORY_ROWS)
    settings = ProphetSettings(yearly_seasonality=False, daily_seasonality=False, uncertainty_samples=200)
    return archive_model(directory, customer, pd.DataFrame({"ds": ds, "y": y}), settings)


def _tar_with(path: Path, infos: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in infos:
            if data is None:
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def _special(name: str, kind: bytes, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


SLIP_ARCHIVES: dict[str, list[tuple[tarfile.TarInfo, bytes | None]]] = {
    "slip-dotdot": [(tarfile.TarInfo("../../escaped-dotdot.txt"), b"pwned")],
    "slip-absolute": [(tarfile.TarInfo("/tmp/fleetcast-escaped-absolute.txt"), b"pwned")],
    "slip-symlink": [(_special("model.json", tarfile.SYMTYPE, "/etc/passwd"), None)],
    "slip-hardlink": [(_special("model.json", tarfile.LNKTYPE, "/etc/passwd"), None)],
    "slip-device": [(_special("model.json", tarfile.CHRTYPE), None)],
}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("models")
    for seed, customer in enumerate(CUSTOMERS):
        build_model(directory, customer, seed)
    # A corrupt model: a well-formed, safe tarball whose model.json is not a Prophet model.
    _tar_with(
        directory / "corrupt.tar.gz",
        [(tarfile.TarInfo("model.json"), b"{not json"), (tarfile.TarInfo("metadata.json"), b"{}")],
    )
    for name, members in SLIP_ARCHIVES.items():
        _tar_with(directory / f"{name}.tar.gz", members)
    # A link inside the models folder that leads outside it.
    outside = tmp_path_factory.mktemp("outside")
    shutil.copy(directory / "0.tar.gz", outside / "secret.tar.gz")
    (directory / "link.tar.gz").symlink_to(outside / "secret.tar.gz")
    return directory


# --------------------------------------------------------------- the real MMS
@pytest.fixture(scope="module", params=[pytest.param("mms", marks=pytest.mark.mms), "lean"])
def container(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ContainerClient]:
    """Each server behind the endpoint in turn: MMS (the reference, lazy loads) and lean (the default)."""
    if request.param == "mms":
        require_java()
    root = tmp_path_factory.mktemp(request.param)
    options = {"workers": 2} if request.param == "lean" else {}
    with start_server(request.param, root, {"SAGEMAKER_MULTI_MODEL": "true"}, **options) as server:
        client = ContainerClient(server.url)
        client.kind = request.param
        yield client


def _unload_all(container: ContainerClient) -> None:
    for model in container.loaded_models():
        container.unload(model["modelName"])


# ---------------------------------------------------------------- endpoints
StartEndpoint = Callable[..., RunningEndpoint]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[StartEndpoint]:
    running: list[tuple[RunningEndpoint, ContainerClient]] = []

    def _start(
        container: ContainerClient,
        source: ModelSource,
        *,
        max_loaded: int | None = None,
        disk_cache_bytes: int | None = None,
        model_ready_timeout_s: float = 60.0,
        container_models_dir: str | None = None,
        cache_dir: Path | None = None,
    ) -> RunningEndpoint:
        endpoint = MultiModelEndpoint(
            source,
            container,
            cache_dir or tmp_path / f"cache{len(running)}",
            container_models_dir=container_models_dir,
            policy=CachePolicy(max_loaded=max_loaded, disk_cache_bytes=disk_cache_bytes),
            model_ready_timeout_s=model_ready_timeout_s,
        )
        server = start_endpoint(endpoint)
        running.append((server, container))
        return server

    yield _start
    for server, container in running:
        server.stop()
        if container.ping():
            _unload_all(container)


def runtime(url: str) -> Any:
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}),
    )


def invoke(
    client: Any, target: str | None, body: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    kwargs = {
        "EndpointName": "fleetcast",
        "ContentType": "application/json",
        "Accept": "application/json",
        **extra,
    }
    if target is not None:
        kwargs["TargetModel"] = target
    payload = json.dumps(body if body is not None else {"period": 7, "intervals": True}).encode()
    return client.invoke_endpoint(Body=payload, **kwargs)


def fleetcast_header(response: dict[str, Any], name: str) -> str:
    return response["ResponseMetadata"]["HTTPHeaders"][f"x-fleetcast-{name}"]


def container_models(container: ContainerClient) -> set[str]:
    return {model["modelName"] for model in container.loaded_models()}


# -------------------------------------------------------------------- tests
def test_forecast_through_boto3_matches_prophet(
    container: ContainerClient, models_dir: Path, start: StartEndpoint, tmp_path: Path
) -> None:
    server = start(container, LocalFolderSource(models_dir))
    client = runtime(server.url)

    first = invoke(client, "1.tar.gz", CustomAttributes="trace=abc")
    assert first["InvokedProductionVariant"] == "AllTraffic"
    assert first["ContentType"].startswith("application/json")
    body = json.loads(first["Body"].read())
    assert body["customer"] == "1"
    rows = body["forecast"]
    assert len(rows) == 7
    assert all({"ds", "yhat", "yhat_lower", "yhat_upper"} <= set(row) for row in rows)
    assert all(row["yhat_lower"] <= row["yhat"] <= row["yhat_upper"] for row in rows)
    assert fleetcast_header(first, "cache") == "miss"
    assert fleetcast_header(first, "disk") == "miss"
    assert float(fleetcast_header(first, "load-ms")) > 0

    # Forecast correctness: the served yhat is Prophet's own predict for the same dates.
    model_json, metadata = read_archive(models_dir / "1.tar.gz")
    dates = pd.to_datetime([row["ds"] for row in rows])
    assert dates[0] == pd.Timestamp(metadata["end"]) + pd.Timedelta(days=1)
    model = model_from_json(model_json)
    model.uncertainty_samples = 0
    expected = model.predict(pd.DataFrame({"ds": dates}))["yhat"].to_numpy()
    np.testing.assert_allclose([row["yhat"] for row in rows], expected, rtol=1e-9, atol=1e-6)

    second = invoke(client, "1.tar.gz", {"period": 3, "intervals": False})
    assert fleetcast_header(second, "cache") == "hit"
    assert float(fleetcast_header(second, "load-wait-ms")) == 0
    rows = json.loads(second["Body"].read())["forecast"]
    assert len(rows) == 3 and "yhat_lower" not in rows[0]
    assert container_models(container) == {model_id("1.tar.gz")}

    # The one client and its CLI table, against the same endpoint.
    forecast = request_forecast(client, "fleetcast", "1", 5)
    assert len(forecast.rows) == 5 and forecast.cache == "hit"
    assert "yhat_lower" in format_table(forecast)  # the model's own default: it has uncertainty samples
    out = io.StringIO()
    code = invoke_main(customers=["1"], endpoint_name="fleetcast", period=4, endpoint_url=server.url, out=out)
    assert code == 0
    assert "customer 1: 4 steps" in out.getvalue() and out.getvalue().count("\n") == 1 + 2 + 4

    ping = urllib3.request("GET", server.url + "/ping")
    assert ping.status == 200
    stats = json.loads(urllib3.request("GET", server.url + "/fleetcast/stats").data)
    assert stats["loaded"] == ["1.tar.gz"] and stats["loaded_count"] == 1
    assert stats["stats"] == {"downloads": 1, "loads": 1}

    # `fleetcast plot` with the forecast taken from the endpoint and the history from the model.
    png = tmp_path / "plot.png"
    code = plot_main(
        models=models_dir,
        data=None,
        customer="1",
        period=14,
        endpoint_url=server.url,
        endpoint_name="fleetcast",
        history_days=60,
        out=png,
    )
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert (
        plot_main(
            models=None,
            data=None,
            customer="1",
            period=3,
            endpoint_url=None,
            endpoint_name="x",
            history_days=9,
            out=png,
        )
        == 2
    )


def test_validation_errors(container: ContainerClient, models_dir: Path, start: StartEndpoint) -> None:
    server = start(container, LocalFolderSource(models_dir))
    client = runtime(server.url)
    with pytest.raises(client.exceptions.ValidationError, match="Target-Model header is required"):
        invoke(client, None)
    with pytest.raises(client.exceptions.ValidationError, match="endpoint name"):
        client.invoke_endpoint(EndpointName="bad_name", TargetModel="1.tar.gz", Body=b"{}")
    with pytest.raises(client.exceptions.ValidationError, match="TargetVariant"):
        invoke(client, "1.tar.gz", TargetVariant="Canary")
    with pytest.raises(client.exceptions.ValidationError, match="Failed to download model data") as unknown:
        invoke(client, "no-such-customer.tar.gz")
    assert unknown.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert fleetcast_header(unknown.value.response, "cache") == "miss"
    with pytest.raises(client.exceptions.ValidationError, match="InvokeEndpoint limit") as too_big:
        client.invoke_endpoint(
            EndpointName="fleetcast", TargetModel="1.tar.gz", Body=b" " * (6 * 1024 * 1024 + 1)
        )
    assert too_big.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    # The same client (and its kept-alive connections) still works after the errors above.
    assert container_models(container) == set(), "no error above loaded anything"
    assert len(json.loads(invoke(client, "2.tar.gz", {"period": 2})["Body"].read())["forecast"]) == 2

    # Header names are case-insensitive: a raw request with a lower-case header works too.
    raw = urllib3.request(
        "POST",
        server.url + "/endpoints/fleetcast/invocations",
        body=b'{"period": 2}',
        headers={"x-amzn-sagemaker-target-model": "2.tar.gz", "content-type": "application/json"},
    )
    assert raw.status == 200, raw.data
    assert raw.headers["x-Amzn-Invoked-Production-Variant"] == "AllTraffic"
    assert len(json.loads(raw.data)["forecast"]) == 2


@pytest.mark.parametrize(
    "target",
    ["../0.tar.gz", "../../etc/passwd", "/etc/passwd", "a/../../0.tar.gz", "..\\0.tar.gz", "./0.tar.gz"],
)
def test_traversal_attempts_are_rejected(
    container: ContainerClient, models_dir: Path, start: StartEndpoint, target: str
) -> None:
    server = start(container, LocalFolderSource(models_dir / "."))
    client = runtime(server.url)
    with pytest.raises(client.exceptions.ValidationError):
        invoke(client, target)
    assert server.endpoint.stats["downloads"] == 0
    assert container_models(container) == set()


def test_a_symlink_leading_out_of_the_models_folder_is_not_followed(
    container: ContainerClient, models_dir: Path, start: StartEndpoint
) -> None:
    server = start(container, LocalFolderSource(models_dir))
    client = runtime(server.url)
    with pytest.raises(client.exceptions.ValidationError, match="no model archive"):
        invoke(client, "link.tar.gz")
    assert server.endpoint.stats["downloads"] == 0


@pytest.mark.parametrize("archive", sorted(SLIP_ARCHIVES))
def test_tar_slip_archives_are_rejected(
    container: ContainerClient, models_dir: Path, start: StartEndpoint, tmp_path: Path, archive: str
) -> None:
    server = start(container, LocalFolderSource(models_dir))
    client = runtime(server.url)
    before = {p for p in tmp_path.parent.rglob("*") if "escaped" in p.name}
    with pytest.raises(client.exceptions.ValidationError, match="rejected") as rejected:
        invoke(client, f"{archive}.tar.gz")
    assert archive in rejected.value.response["Error"]["Message"]
    cache = server.endpoint.disk.root
    assert [p.name for p in cache.iterdir()] == [], "nothing left in the cache"
    assert {p for p in tmp_path.parent.rglob("*") if "escaped" in p.name} == before
    assert not Path("/tmp/fleetcast-escaped-absolute.txt").exists()
    assert server.endpoint.stats["loads"] == 0
    assert container_models(container) == set()


def test_model_errors_carry_the_containers_status_and_message(
    container: ContainerClient, models_dir: Path, start: StartEndpoint
) -> None:
    server = start(container, LocalFolderSource(models_dir))
    client = runtime(server.url)
    with pytest.raises(client.exceptions.ModelError) as bad_request:
        invoke(client, "0.tar.gz", {"period": 0})
    error = bad_request.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 400
    assert json.loads(error["OriginalMessage"])["error"]
    assert "period" in error["OriginalMessage"]
    assert error["LogStreamArn"].startswith("arn:aws:logs:")
    assert "Received client error (400)" in error["Error"]["Message"]

    with pytest.raises(client.exceptions.ModelError) as corrupt:
        invoke(client, "corrupt.tar.gz")
    error = corrupt.value.response
    assert error["OriginalStatusCode"] >= 400
    original = json.loads(error["OriginalMessage"])
    assert set(original) >= {"error", "message"}
    assert "Traceback" not in error["OriginalMessage"]

    # A model error does not poison the endpoint: a good model still answers.
    assert invoke(client, "0.tar.gz")["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_lru_eviction_order_under_max_loaded(
    container: ContainerClient, models_dir: Path, start: StartEndpoint
) -> None:
    server = start(container, LocalFolderSource(models_dir), max_loaded=2)
    client = runtime(server.url)
    a, b, c = (model_id(f"{customer}.tar.gz") for customer in ("0", "1", "2"))
    invoke(client, "0.tar.gz")
    invoke(client, "1.tar.gz")
    invoke(client, "0.tar.gz")  # 0 is now more recent than 1
    assert container_models(container) == {a, b}
    invoke(client, "2.tar.gz")
    assert container_models(container) == {a, c}, "the least recently used model (1) is unloaded"
    assert server.endpoint.loaded_models() == [a, c]
    invoke(client, "1.tar.gz")
    assert container_models(container) == {c, b}
    response = invoke(client, "1.tar.gz")
    assert fleetcast_header(response, "cache") == "hit"
    # 1 was unloaded from the container but kept on disk: loading it again needed no download.
    assert server.endpoint.stats["downloads"] == 3
    assert server.endpoint.stats["loads"] == 4
    assert server.endpoint.stats["unloads"] == 2


def test_max_loaded_holds_under_concurrent_requests(
    container: ContainerClient, models_dir: Path, start: StartEndpoint
) -> None:
    server = start(container, LocalFolderSource(models_dir), max_loaded=1)
    targets = ["0.tar.gz", "1.tar.gz", "2.tar.gz"] * 2

    def call(target: str) -> int:
        return invoke(runtime(server.url), target)["ResponseMetadata"]["HTTPStatusCode"]

    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        assert list(pool.map(call, targets)) == [200] * len(targets)
    # In-flight requests pin their model, so the limit may be exceeded briefly; it is restored after.
    deadline = time.monotonic() + 30
    while len(container_models(container)) > 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(container_models(container)) == 1
    assert len(server.endpoint.loaded_models()) == 1


def test_a_restarted_endpoint_reuses_its_disk_cache_and_the_loaded_model(
    container: ContainerClient, models_dir: Path, start: StartEndpoint, tmp_path: Path
) -> None:
    first = start(container, LocalFolderSource(models_dir), cache_dir=tmp_path / "kept")
    invoke(runtime(first.url), "0.tar.gz")
    first.stop()  # the container keeps the model loaded, as it would across a front-end restart
    second = start(container, LocalFolderSource(models_dir), cache_dir=tmp_path / "kept")
    response = invoke(runtime(second.url), "0.tar.gz")
    assert fleetcast_header(response, "disk") == "hit", "the extracted model on disk is reused"
    assert second.endpoint.stats["downloads"] == 0
    assert second.endpoint.stats["loads"] == 1, "the container's 409 (already loaded) is adopted"
    assert container_models(container) == {model_id("0.tar.gz")}


def test_disk_cache_evicts_unloaded_models_over_budget(
    container: ContainerClient, models_dir: Path, start: StartEndpoint
) -> None:
    server = start(container, LocalFolderSource(models_dir), max_loaded=1, disk_cache_bytes=1)
    client = runtime(server.url)
    cache = server.endpoint.disk.root
    invoke(client, "0.tar.gz")
    assert sorted(p.name for p in cache.iterdir()) == [model_id("0.tar.gz")], (
        "in use: kept though over budget"
    )
    invoke(client, "1.tar.gz")
    assert sorted(p.name for p in cache.iterdir()) == [model_id("1.tar.gz")]
    assert server.endpoint.stats["disk_evictions"] == 1
    response = invoke(client, "0.tar.gz")
    assert fleetcast_header(response, "disk") == "miss", "evicted from disk: downloaded again"


def test_concurrent_first_requests_download_and_load_once(
    container: ContainerClient, models_dir: Path, start: StartEndpoint
) -> None:
    server = start(container, LocalFolderSource(models_dir))
    clients = 8
    barrier = threading.Barrier(clients)

    def first_request(_: int) -> dict[str, Any]:
        client = runtime(server.url)
        barrier.wait(timeout=30)
        return invoke(client, "3.tar.gz")

    with ThreadPoolExecutor(max_workers=clients) as pool:
        responses = list(pool.map(first_request, range(clients)))
    assert all(r["ResponseMetadata"]["HTTPStatusCode"] == 200 for r in responses)
    assert server.endpoint.stats["downloads"] == 1
    assert server.endpoint.stats["loads"] == 1
    disk = sorted(fleetcast_header(r, "disk") for r in responses)
    assert disk.count("miss") == 1, f"exactly one request downloaded the model: {disk}"
    assert container_models(container) == {model_id("3.tar.gz")}


def test_model_not_ready_while_loading_then_served(
    container: ContainerClient, models_dir: Path, start: StartEndpoint
) -> None:
    # The lean server loads in milliseconds: only a wait shorter than that shows the not-ready answer.
    ready_timeout = 0.05 if container.kind == "mms" else 0.0005
    server = start(container, LocalFolderSource(models_dir), model_ready_timeout_s=ready_timeout)
    client = runtime(server.url)
    with pytest.raises(client.exceptions.ModelNotReadyException, match="retry"):
        invoke(client, "2.tar.gz")
    deadline = time.monotonic() + 60
    while True:  # clients are expected to retry; the load went on in the background
        try:
            response = invoke(client, "2.tar.gz")
            break
        except client.exceptions.ModelNotReadyException:
            assert time.monotonic() < deadline, "the model never became ready"
            time.sleep(0.2)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert server.endpoint.stats["loads"] == 1


def test_the_container_is_told_the_cache_path_it_sees(
    container: ContainerClient, models_dir: Path, start: StartEndpoint, tmp_path: Path
) -> None:
    # As with a docker container that mounts the cache at /opt/ml/models: another path, same files.
    mounted = tmp_path / "as-the-container-sees-it"
    mounted.symlink_to(tmp_path / "cache0", target_is_directory=True)
    server = start(container, LocalFolderSource(models_dir), container_models_dir=str(mounted))
    client = runtime(server.url)
    assert json.loads(invoke(client, "0.tar.gz")["Body"].read())["customer"] == "0"
    [model] = container.loaded_models()
    assert model["modelUrl"] == str(mounted / model_id("0.tar.gz") / "model")


def test_container_down_is_service_unavailable(models_dir: Path, start: StartEndpoint) -> None:
    with refused_port() as nobody:
        server = start(ContainerClient(f"http://127.0.0.1:{nobody}"), LocalFolderSource(models_dir))
        client = runtime(server.url)
        with pytest.raises(client.exceptions.ServiceUnavailable, match="not answering"):
            invoke(client, "0.tar.gz")
        assert urllib3.request("GET", server.url + "/ping").status == 503


# ------------------------------------------------------------------------ 507
class _Fake507Container(BaseHTTPRequestHandler):
    """A peer that answers 507 to `POST /models` while `refusals` lasts (MMS itself never does)."""

    protocol_version = "HTTP/1.1"
    state: dict[str, Any]

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.state["lock"]:
            self.state["calls"].append(("POST", self.path))
            if self.path == "/models":
                name = json.loads(body)["model_name"]
                if self.state["refusals"] > 0:
                    self.state["refusals"] -= 1
                    return self._reply(507, {"code": 507, "message": "Insufficient memory"})
                self.state["loaded"].append(name)
                return self._reply(200, {"status": f"Model {name} registered"})
            name = self.path.split("/")[2]
            if name not in self.state["loaded"]:
                return self._reply(404, {"code": 404, "message": "Model not found"})
        return self._reply(200, {"customer": name, "forecast": []})

    def do_DELETE(self) -> None:
        name = self.path.split("/")[2]
        with self.state["lock"]:
            self.state["calls"].append(("DELETE", self.path))
            if name in self.state["loaded"]:
                self.state["loaded"].remove(name)
                return self._reply(200, {"status": "unregistered"})
        return self._reply(404, {"code": 404, "message": "Model not found"})

    def do_GET(self) -> None:
        self._reply(200, {"status": "Healthy"})

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def fake_507_container() -> Iterator[tuple[ContainerClient, dict[str, Any]]]:
    state: dict[str, Any] = {"lock": threading.Lock(), "calls": [], "loaded": [], "refusals": 0}
    handler = type("Handler", (_Fake507Container,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield ContainerClient(f"http://127.0.0.1:{server.server_port}"), state
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_507_unloads_least_recently_used_and_retries(
    fake_507_container: tuple[ContainerClient, dict[str, Any]], models_dir: Path, start: StartEndpoint
) -> None:
    container, state = fake_507_container
    server = start(container, LocalFolderSource(models_dir))
    client = runtime(server.url)
    a, b, c = (model_id(f"{customer}.tar.gz") for customer in ("0", "1", "2"))
    invoke(client, "0.tar.gz")
    invoke(client, "1.tar.gz")
    invoke(client, "0.tar.gz")
    state["refusals"] = 1
    assert invoke(client, "2.tar.gz")["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert ("DELETE", f"/models/{b}") in state["calls"], "1 was the least recently used"
    assert state["loaded"] == [a, c]
    assert server.endpoint.stats["container_507"] == 1

    # Out of room with nothing left to unload: a ModelError carrying the 507.
    state["refusals"] = 100
    with pytest.raises(client.exceptions.ModelError) as full:
        invoke(client, "3.tar.gz")
    assert full.value.response["OriginalStatusCode"] == 507
    assert state["loaded"] == [], "it unloaded every idle model before giving up"
    assert state["refusals"] == 100 - 3


# ------------------------------------------------------------------------ S3
def test_s3_prefix_via_moto(container: ContainerClient, models_dir: Path, start: StartEndpoint) -> None:
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://{host}:{port}",
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        s3.create_bucket(Bucket="fleet")
        s3.upload_file(str(models_dir / "2.tar.gz"), "fleet", "models/v1/2.tar.gz")
        s3.upload_file(str(models_dir / "slip-dotdot.tar.gz"), "fleet", "models/v1/slip.tar.gz")
        s3.put_object(Bucket="fleet", Key="models/secret.tar.gz", Body=b"outside the prefix")
        server = start(container, S3Source(bucket="fleet", prefix="models/v1/", client=s3))
        client = runtime(server.url)

        body = json.loads(invoke(client, "2.tar.gz")["Body"].read())
        assert body["customer"] == "2" and len(body["forecast"]) == 7
        with pytest.raises(client.exceptions.ValidationError, match=r"s3://fleet/models/v1/9\.tar\.gz"):
            invoke(client, "9.tar.gz")
        with pytest.raises(client.exceptions.ValidationError, match=r"'\.\.'"):
            invoke(client, "../secret.tar.gz")
        with pytest.raises(client.exceptions.ValidationError, match="rejected"):
            invoke(client, "slip.tar.gz")
        assert server.endpoint.stats["downloads"] == 1
    finally:
        moto.stop()


def test_the_local_endpoint_command_serves_boto3(
    container: ContainerClient, models_dir: Path, tmp_path: Path
) -> None:
    """`fleetcast local-endpoint` itself, as a user starts it, on the port the OS gave it."""
    with start_local_endpoint(tmp_path, models=models_dir, container=container.base_url) as endpoint:
        answer = json.loads(invoke(runtime(endpoint.url), "1.tar.gz", {"period": 4})["Body"].read())
        assert answer["customer"] == "1" and len(answer["forecast"]) == 4
        assert endpoint.stop() == 0
    assert "local multi-model endpoint listening on " + endpoint.url in endpoint.log()
    _unload_all(container)


def test_launch_invoke_against_the_local_endpoint(
    container: ContainerClient, models_dir: Path, start: StartEndpoint, tmp_path: Path
) -> None:
    """`python -m launch invoke` (issue 5) calls our endpoint exactly as it calls SageMaker: real boto3."""
    server = start(container, LocalFolderSource(models_dir))
    answer = request_forecast(runtime(server.url), "fleetcast", "2", 6, intervals=True).answer
    assert answer["customer"] == "2"
    assert len(answer["forecast"]) == 6
    assert all(row["yhat_lower"] <= row["yhat"] <= row["yhat_upper"] for row in answer["forecast"])

    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    command = ["invoke", "--endpoint-url", server.url, "--endpoint-name", "fleetcast", "--period", "3"]
    # The fleet manifest names customer 2's archive (this folder's models are unversioned).
    row = manifest.entry_for("2", "r", "d", "s", "m", None)._replace(target_model="2.tar.gz")
    listed, _ = manifest.write_manifest(tmp_path / manifest.MANIFEST_NAME, [row])
    command += ["--manifest", str(listed)]
    done = subprocess.run(
        [sys.executable, "-m", "launch", *command, "--customer", "2", "--customer", "nobody"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # one unknown customer fails, the known one still prints
    assert "customer 2: 3 steps" in done.stdout
    assert "nobody" in done.stderr
