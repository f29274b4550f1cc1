"""The real image, really built and run: train (one host and sharded over two), the Processing step, and
serve's multi-model API, each the way SageMaker invokes it (`docker run IMAGE train|serve`, /opt/ml mounted).

Every server is published on 127.0.0.1 only.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pandas as pd
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from fleetcast.data.generate import generate_csv
from fleetcast.model import archive
from fleetcast.model.prophet_model import model_from_json
from fleetcast.paths import TRAINING_JOB_NAME_ENV
from fleetcast.training.inputs import scan_channel
from tests.helpers import write_folder_layout
from tests.support.requirements import REQUIREMENTS, canonical, pins
from tests.support.servers import start_image, start_local_endpoint

pytestmark = pytest.mark.container

CUSTOMERS = range(8)
HYPERPARAMETERS = {
    "holdout_days": "14",
    "uncertainty_samples": "100",
    "workers": "2",
    "progress_seconds": "1",
}
SERVE_START_LIMIT = 180  # SageMaker allows 4 minutes for the first /ping
STOP_LIMIT = 30  # SageMaker sends SIGKILL 30 s after SIGTERM


def make_training_root(
    root: Path, customers: list[int], host: str, hosts: list[str], **hyperparameters: str
) -> Path:
    """An /opt/ml tree as SageMaker lays it out on one instance of a training job."""
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({**HYPERPARAMETERS, **hyperparameters}))
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": host, "hosts": hosts, "network_interface_name": "eth0"})
    )
    distribution = "ShardedByS3Key" if len(hosts) > 1 else "FullyReplicated"
    channel_config = {
        "ContentType": "text/csv",
        "TrainingInputMode": "File",
        "S3DistributionType": distribution,
        "RecordWrapperType": "None",
    }
    (config / "inputdataconfig.json").write_text(json.dumps({"train": channel_config}))
    channel = root / "input" / "data" / "train"
    channel.mkdir(parents=True)
    write_folder_layout(channel, customers)
    for sub in ("checkpoints", "model", "output"):
        (root / sub).mkdir()
    return root


def check_checkpoints(root: Path, customers: list[int], host: str) -> None:
    names = sorted(p.name for p in (root / "checkpoints").glob("*.tar.gz"))
    assert names == sorted(archive.archive_name(str(c)) for c in customers)
    for customer in customers:
        model_json, metadata = archive.read_archive(
            root / "checkpoints" / archive.archive_name(str(customer))
        )
        assert metadata["customer"] == str(customer)
        assert metadata["host"] == host
        assert metadata["rows"] == 120
        model = model_from_json(model_json)
        assert len(model.history) == 120


def start_train(docker, image, root: Path, host: str, name: str) -> None:
    # SageMaker names the job alike on every host: the run id (training/resume.py).
    job = f"{TRAINING_JOB_NAME_ENV}=fleetcast-train-{docker.session}"
    docker.run(
        "run", "-d", "--name", name, *docker.container_args(), "-e", job,
        "--hostname", host, "-v", f"{root}:/opt/ml", image.tag, "train",
    )  # fmt: skip


def container_logs(docker, name: str) -> str:
    logs = docker.run("logs", name)
    return logs.stdout + logs.stderr


def wait_for_exit(docker, name: str, timeout: float = 300) -> tuple[int, str]:
    code = int(docker.run("wait", name, timeout=timeout).stdout.strip())
    return code, container_logs(docker, name)


@pytest.fixture(scope="module")
def trained_root(docker, image, tmp_path_factory) -> tuple[Path, str]:
    """One single-instance training job over every customer; its checkpoints feed the serving tests."""
    root = make_training_root(
        tmp_path_factory.mktemp("single") / "opt_ml", list(CUSTOMERS), "algo-1", ["algo-1"]
    )
    name = f"fleetcast-train-{docker.session}"
    started = time.monotonic()
    start_train(docker, image, root, "algo-1", name)
    code, logs = wait_for_exit(docker, name)
    print(f"\ncontainer train, {len(CUSTOMERS)} customers: {time.monotonic() - started:.1f}s")
    assert code == 0, logs
    return root, logs


def test_image_metadata_and_contents(docker, image):
    inspect = json.loads(docker.run("image", "inspect", image.tag).stdout)[0]
    labels = inspect["Config"]["Labels"]
    assert labels["com.amazonaws.sagemaker.capabilities.multi-models"] == "true"
    assert labels["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    assert "8080/tcp" in inspect["Config"]["ExposedPorts"]
    assert inspect["Config"].get("Entrypoint") in (
        None,
        [],
    )  # SageMaker passes `train`/`serve` as the command
    probe = docker.run(
        "run", "--rm", *docker.container_args(), image.tag, "sh", "-c",
        'for c in train serve; do p=$(command -v $c) && readlink "$p"; done;'
        " java -version 2>&1 | head -1; for t in gcc cc; do command -v $t || true; done;"
        " ls /root/.cache/pip 2>/dev/null | head -1",
    ).stdout.splitlines()  # fmt: skip
    assert probe[0:2] == ["fleetcast", "fleetcast"], probe  # links to the console script: Python is PID 1
    assert "version" in probe[2], probe
    assert probe[3:] == [], f"build tools or pip cache left in the image: {probe[3:]}"
    help_text = docker.run("run", "--rm", *docker.container_args(), image.tag).stdout
    assert "train" in help_text
    assert "serve" in help_text


def test_installed_packages_are_consistent_and_exactly_the_lock(docker, image):
    def pip(*args: str):
        command = ["pip", *args, "--disable-pip-version-check"]
        return docker.run("run", "--rm", *docker.container_args(), image.tag, *command, check=False)

    checked = pip("check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    listed = json.loads(pip("list", "--format=json").stdout)
    installed = {canonical(package["name"]): package["version"] for package in listed}
    assert installed.pop("fleetcast") == importlib.metadata.version("fleetcast")
    installed.pop("pip")  # the venv's own installer, from the base image's python
    assert installed == pins(REQUIREMENTS / "image.lock")


def test_processing_step_splits_raw_csv(docker, image, tmp_path):
    raw, out = tmp_path / "input", tmp_path / "output"
    raw.mkdir()
    out.mkdir()
    generate_csv(out=raw / "consumption.csv", customers=6, seed=3, start="2022-01-01", end="2023-01-01",
                 rows_per_customer=120, freq="D")  # fmt: skip
    docker.run(
        "run", "--rm", *docker.container_args(),
        "-v", f"{raw}:/opt/ml/processing/input:ro", "-v", f"{out}:/opt/ml/processing/output",
        image.tag, "fleetcast", "split",
    )  # fmt: skip
    # What the Processing step writes is exactly what the training channel reads.
    inventory = scan_channel(out)
    assert len(inventory.files) + len(inventory.buckets) >= 1
    written = pd.concat(pd.read_csv(p) for p in out.rglob("*.csv"))
    assert len(written) == len(pd.read_csv(raw / "consumption.csv"))


def test_train_single_host_writes_loadable_checkpoints(trained_root):
    root, logs = trained_root
    check_checkpoints(root, list(CUSTOMERS), "algo-1")
    assert f"fleet done: {len(CUSTOMERS)} trained, 0 failed" in logs
    assert not (root / "output" / "failure").exists()


def test_train_two_hosts_each_on_its_own_shard(docker, image, tmp_path):
    hosts = ["algo-1", "algo-2"]
    shards = {host: [c for c in CUSTOMERS if c % len(hosts) == i] for i, host in enumerate(hosts)}
    roots = {host: make_training_root(tmp_path / host, shards[host], host, hosts) for host in hosts}
    names = {host: f"fleetcast-{host}-{docker.session}" for host in hosts}
    for host in hosts:  # both instances run at once, as in a multi-instance job
        start_train(docker, image, roots[host], host, names[host])
    for host in hosts:
        code, logs = wait_for_exit(docker, names[host])
        assert code == 0, logs
        check_checkpoints(roots[host], shards[host], host)
        assert f"fleet done: {len(shards[host])} trained" in logs


@pytest.fixture(scope="module")
def serving(docker, image, trained_root, tmp_path_factory) -> Iterator[dict]:
    """`serve` with /opt/ml/models holding every trained model extracted as the platform would."""
    root, _ = trained_root
    models = tmp_path_factory.mktemp("models")
    for archive_path in (root / "checkpoints").glob("*.tar.gz"):
        target = models / archive_path.name.removesuffix(".tar.gz") / "model"
        target.mkdir(parents=True)
        with tarfile.open(archive_path) as tar:
            # Our own archives; the "data" filter where this Python has it (3.11.4+).
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(target, **extra)
    started = time.monotonic()
    server = start_image(
        docker, image.tag, f"fleetcast-serve-{docker.session}", models.parent,
        docker_args=["-v", f"{models}:/opt/ml/models:ro", "-e", "SAGEMAKER_MULTI_MODEL=true"],
        timeout=SERVE_START_LIMIT,
    )  # fmt: skip
    print(f"\nserve start -> /ping 200: {time.monotonic() - started:.1f}s")
    with server:
        yield {"url": server.url, "name": server.name, "server": server, "models": models}


def test_serve_multi_model_api(serving):
    url = serving["url"]
    customer = "3"
    body = {"model_name": "opaque-3", "url": f"/opt/ml/models/{customer}/model"}
    loaded = requests.post(f"{url}/models", json=body, timeout=60)
    assert loaded.status_code == 200, loaded.text
    again = requests.post(f"{url}/models", json=body, timeout=60)
    assert again.status_code == 409, again.text

    listed = requests.get(f"{url}/models", timeout=10).json()
    assert "opaque-3" in [m["modelName"] for m in listed["models"]]
    assert requests.get(f"{url}/models/opaque-3", timeout=10).status_code == 200

    headers = {"X-Amzn-SageMaker-Target-Model": f"{customer}.tar.gz", "Accept": "application/json"}
    invoked = requests.post(f"{url}/models/opaque-3/invoke", json={"period": 7}, headers=headers, timeout=60)
    assert invoked.status_code == 200, invoked.text
    forecast = invoked.json()
    assert forecast["customer"] == customer
    assert len(forecast["forecast"]) == 7
    first = pd.Timestamp(forecast["forecast"][0]["ds"])
    assert first > pd.Timestamp("2022-01-01") + pd.Timedelta(days=119)  # starts after the last observation
    assert all({"yhat", "yhat_lower", "yhat_upper"} <= set(row) for row in forecast["forecast"])

    assert requests.delete(f"{url}/models/opaque-3", timeout=60).status_code == 200
    assert requests.get(f"{url}/models/opaque-3", timeout=10).status_code == 404
    gone = requests.post(f"{url}/models/opaque-3/invoke", json={"period": 7}, headers=headers, timeout=60)
    assert gone.status_code == 404
    # The image's Python may predate tarfile's filter= (Debian 12: 3.11.2); the warm-up must not care.
    assert "warm-up failed" not in serving["server"].log()


def test_predict_script_against_the_serve_container(serving, trained_root):
    """local_test/predict.sh against a container, as serve_local.sh's header says to call it: with the
    mounted models folder it loads, forecasts and unloads; without it the container cannot see the
    temporary folder the archive went to, and the script says which variables fix that."""
    import os
    import subprocess

    root, _ = trained_root
    script = Path(__file__).resolve().parents[2] / "local_test" / "predict.sh"
    archive_path = root / "checkpoints" / archive.archive_name("5")
    # The table is printed by this repository's client, with this interpreter (as tests/test_client.py does).
    base = {**os.environ, "FLEETCAST_CONTAINER_URL": serving["url"], "FLEETCAST_PYTHON": sys.executable}

    def predict(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(script), str(archive_path), "3"], env={**base, **extra},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    unseen = predict()
    assert unseen.returncode == 1
    assert "FLEETCAST_CONTAINER_MODELS_DIR=/opt/ml/models" in unseen.stderr, unseen.stderr
    # The fixture mounts its models folder at /opt/ml/models, as serve_local.sh mounts test_dir/models.
    mounted = {
        "FLEETCAST_MODELS_DIR": str(serving["models"]),
        "FLEETCAST_CONTAINER_MODELS_DIR": "/opt/ml/models",
    }
    seen = predict(**mounted)
    assert seen.returncode == 0, seen.stdout + seen.stderr
    assert "customer 5: 3 steps" in seen.stdout


def test_serve_stops_on_sigterm_within_the_grace_period(docker, serving):
    name = serving["name"]
    began = time.monotonic()
    docker.run("kill", "--signal", "TERM", name)
    code = int(docker.run("wait", name, timeout=STOP_LIMIT + 30).stdout.strip())
    elapsed = time.monotonic() - began
    assert elapsed < STOP_LIMIT, f"serve took {elapsed:.1f}s to stop after SIGTERM"
    assert code != 137, "serve was killed, not stopped"
    print(f"\nserve stopped {elapsed:.1f}s after SIGTERM (exit {code})")


def test_train_stops_on_sigterm_and_keeps_its_checkpoints(docker, image, tmp_path):
    """Spot interruption or StopTrainingJob: SIGTERM reaches `train` (Python is PID 1); it stops cleanly."""
    # Stan's fits (~50 ms each) keep the fleet busy long enough for the signal to land mid-fleet; the
    # in-process engine trains all 300 before a `docker kill` arrives.
    root = make_training_root(tmp_path / "opt_ml", list(range(300)), "algo-1", ["algo-1"], fit_engine="stan")
    name = f"fleetcast-train-stop-{docker.session}"
    start_train(docker, image, root, "algo-1", name)
    deadline = time.monotonic() + 120
    while "trained " not in (logs := container_logs(docker, name)):
        assert time.monotonic() < deadline, f"train made no progress:\n{logs[-3000:]}"
        time.sleep(0.2)
    began = time.monotonic()
    docker.run("kill", "--signal", "TERM", name)
    code = int(docker.run("wait", name, timeout=STOP_LIMIT + 30).stdout.strip())
    elapsed = time.monotonic() - began
    assert elapsed < STOP_LIMIT, f"train took {elapsed:.1f}s to stop after SIGTERM"
    assert code == 143, container_logs(docker, name)[-3000:]
    assert "stopped by SIGTERM" in (root / "output" / "failure").read_text()
    print(f"\ntrain stopped {elapsed:.1f}s after SIGTERM (exit {code})")
    kept = list((root / "checkpoints").glob("*.tar.gz"))
    assert 0 < len(kept) < 300
    for archive_path in kept:
        archive.read_archive(archive_path)  # every checkpoint left behind is complete


def test_local_endpoint_in_front_of_the_container_answers_boto3(docker, image, trained_root, tmp_path):
    """The whole hosting path: boto3 InvokeEndpoint -> local multi-model endpoint -> `serve` container."""
    root, _ = trained_root
    cache = tmp_path / "cache"  # the endpoint extracts models here; the container sees it as /opt/ml/models
    cache.mkdir()
    container = start_image(
        docker, image.tag, f"fleetcast-serve-endpoint-{docker.session}", tmp_path,
        docker_args=["-v", f"{cache}:/opt/ml/models", "-e", "SAGEMAKER_MULTI_MODEL=true"],
        timeout=SERVE_START_LIMIT,
    )  # fmt: skip
    with container, start_local_endpoint(
        tmp_path, models=root / "checkpoints", container=container.url,
        args=["--disk-cache", str(cache), "--container-models-dir", "/opt/ml/models"],
    ) as endpoint:  # fmt: skip
        client = boto3.client(
            "sagemaker-runtime",
            endpoint_url=endpoint.url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(retries={"total_max_attempts": 1}),
        )
        for customer in ("2", "5"):
            response = client.invoke_endpoint(
                EndpointName="fleetcast",
                TargetModel=f"{customer}.tar.gz",
                ContentType="application/json",
                Accept="application/json",
                Body=json.dumps({"period": 3}).encode(),
            )
            forecast = json.loads(response["Body"].read())
            assert forecast["customer"] == customer
            assert len(forecast["forecast"]) == 3
        with pytest.raises(ClientError) as missing:
            client.invoke_endpoint(
                EndpointName="fleetcast",
                TargetModel="no-such-customer.tar.gz",
                ContentType="application/json",
                Body=b'{"period": 3}',
            )
        assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] < 500


def test_train_in_the_image_writes_the_html_fleet_report(trained_root):
    root, _ = trained_root
    page = (root / "output" / "data" / "fleet-report-algo-1.html").read_text()
    assert page.count('class="customer-plot"') == min(10, len(CUSTOMERS))


def test_forecast_script_runs_the_batch_forecast_on_two_instances(docker, image, trained_root, tmp_path):
    import gzip
    import os
    import subprocess

    root, _ = trained_root
    out = tmp_path / "forecast"
    script = Path(__file__).resolve().parents[2] / "local_test" / "forecast.sh"
    environment = {**docker.env, "FLEETCAST_FORECAST_OUT": str(out), "PATH": os.environ["PATH"]}
    result = subprocess.run(
        ["bash", str(script), image.tag, str(root / "checkpoints"), "5", "2"],
        env=environment, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    files = sorted((out / "forecasts").glob("*.csv.gz"))
    assert [f.name for f in files] == ["forecasts-algo-1.csv.gz", "forecasts-algo-2.csv.gz"]
    customers: list[str] = []
    for file in files:
        with gzip.open(file, "rt") as handle:
            frame = pd.read_csv(handle, dtype={"customer": str})
        customers += sorted(set(frame["customer"]))
        assert (frame.groupby("customer").size() == 5).all()
    assert sorted(customers) == sorted(str(c) for c in CUSTOMERS)  # every customer once, on one instance
    # Future regressor values reach the job as `launch forecast --regressors-uri` delivers a file.
    weather = tmp_path / "weather.csv"
    weather.write_text("timestamp,temperature\n2030-01-01 00:00:00,4.5\n")
    environment["FLEETCAST_FORECAST_REGRESSORS"] = str(weather)
    result = subprocess.run(
        ["bash", str(script), image.tag, str(root / "checkpoints"), "5", "1"],
        env=environment, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "forecast-reports" / "forecast-summary-algo-1.json").read_text())
    assert summary["regressors"] == "/opt/ml/processing/input/regressors/weather.csv"
    assert summary["failed"] == 0  # these models use no regressor: the table is there, and unused
