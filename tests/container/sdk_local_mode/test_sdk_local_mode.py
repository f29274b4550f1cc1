"""The BYOC habit: the SageMaker Python SDK v2's local mode against our real image.

`Estimator(image_uri=..., instance_type="local").fit({"train": "file://..."})` with one and two
instances, the models recovered from model.tar.gz and loaded by stock Prophet, a bad hyperparameter
failing with its reason, then `Model(...).deploy(instance_type="local")` and `Predictor.predict` with the
SDK's default serializer, JSONSerializer and the blog's string payload. Offline: telemetry off, file://
output, the endpoint bound to 127.0.0.1 (driver.py). Each call starts containers on the shared engine, so
the fleets are small and the trained model is shared by the serving tests.
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest
from prophet.serialize import model_from_json

from fleetcast.model import archive
from tests.container.sdk_local_mode.conftest import free_loopback_port
from tests.helpers import write_folder_layout

pytestmark = pytest.mark.container

CUSTOMERS = [str(i) for i in range(8)]
FAST = {"holdout_days": "0", "uncertainty_samples": "0"}


def local_path(uri: str) -> Path:
    parsed = urlparse(uri)
    assert parsed.scheme in ("file", ""), uri
    return Path(parsed.netloc + parsed.path)


def members(tarball: Path) -> dict[str, bytes]:
    with tarfile.open(tarball) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def fit(sdk, image, tmp: Path, instances: int, hyperparameters: dict[str, str]):
    data = tmp / "data"
    if not data.exists():
        write_folder_layout(data, range(len(CUSTOMERS)))
    return sdk.run(
        "train", "--image", image.tag, "--data", str(data), "--output", str(tmp / "output"),
        "--instances", str(instances), "--hyperparameters", json.dumps(hyperparameters),
        root=tmp / "sdk-root",
    )  # fmt: skip


@pytest.fixture(scope="module")
def trained(sdk, image, tmp_path_factory) -> dict[str, bytes]:
    """model.tar.gz of a one-instance local-mode job, as its members."""
    run = fit(sdk, image, tmp_path_factory.mktemp("fit-1"), 1, FAST)
    assert run.result["ok"], run.output[-6000:]
    assert run.result["sdk"].startswith("2.")
    assert "models will end up in the job's model.tar.gz" in run.output
    return members(local_path(run.result["model_data"]))


def test_fit_delivers_every_model_in_model_tar_gz_loadable_by_stock_prophet(trained):
    assert sorted(n for n in trained if n.endswith(".tar.gz")) == sorted(f"{c}.tar.gz" for c in CUSTOMERS)
    for customer in CUSTOMERS:
        with tarfile.open(fileobj=io.BytesIO(trained[f"{customer}.tar.gz"])) as inner:
            model_json = inner.extractfile(archive.MODEL_FILE).read().decode()
            metadata = json.loads(inner.extractfile(archive.METADATA_FILE).read())
        assert metadata["customer"] == customer
        model = model_from_json(model_json)  # Prophet's own loader, no fleetcast code
        last = model.history["ds"].max()
        forecast = model.predict(pd.DataFrame({"ds": pd.date_range(last, periods=4, freq="D")[1:]}))
        assert len(forecast) == 3 and forecast["yhat"].notna().all()


def test_fit_with_two_instances_trains_each_customer_exactly_once(sdk, image, tmp_path: Path):
    run = fit(sdk, image, tmp_path, 2, FAST)
    assert run.result["ok"], run.output[-6000:]
    assert "each trains only the customers whose id hashes to it" in run.output
    model = members(local_path(run.result["model_data"]))
    assert sorted(n for n in model if n.endswith(".tar.gz")) == sorted(f"{c}.tar.gz" for c in CUSTOMERS)
    summaries = [json.loads(v) for n, v in model.items() if n.startswith("fleet-summary-")]
    assert len(summaries) == 2
    assert sum(s["counts"]["trained"] for s in summaries) == len(CUSTOMERS)

    output = members(local_path(run.result["model_data"]).with_name("output.tar.gz"))
    reports = [n for n in output if Path(n).name.startswith("report-") and n.endswith(".csv")]
    assert len(reports) == 2
    trained_by = [
        {row["customer"] for row in csv.DictReader(io.StringIO(output[n].decode()))} for n in reports
    ]
    assert trained_by[0] | trained_by[1] == set(CUSTOMERS)
    assert not trained_by[0] & trained_by[1]


def test_a_bad_hyperparameter_fails_the_job_with_its_reason(sdk, image, tmp_path: Path):
    run = fit(sdk, image, tmp_path, 1, {**FAST, "seasonality": "yearly"})
    assert not run.result["ok"]
    assert "unknown hyperparameter 'seasonality'" in run.output  # the container's log, streamed by the SDK
    # SageMaker shows output/failure as the FailureReason; local mode leaves it in output.tar.gz.
    found = [
        value.decode()
        for tarball in (tmp_path / "output").rglob("output.tar.gz")
        for name, value in members(tarball).items()
        if Path(name).name == "failure"
    ]
    assert found and "unknown hyperparameter 'seasonality'" in found[0]


@pytest.fixture(scope="module")
def served(sdk, image, trained, tmp_path_factory) -> dict[str, dict]:
    """One customer's archive deployed as a single-model endpoint, and the answers to each way of asking."""
    tmp = tmp_path_factory.mktemp("serve")
    model_data = tmp / "7.tar.gz"
    model_data.write_bytes(trained["7.tar.gz"])
    run = sdk.run(
        "serve", "--image", image.tag, "--model-data", f"file://{model_data}",
        "--port", str(free_loopback_port()), "--customer", "7", "--other", "3", root=tmp / "sdk-root",
    )  # fmt: skip
    assert run.result["ok"], run.output[-6000:]
    assert run.result["published"].startswith("127.0.0.1:"), run.result["published"]  # loopback only
    return run.result["results"]


def forecast_of(result: dict) -> dict:
    assert "answer" in result, result
    answer = result["answer"]
    body = json.loads(answer) if isinstance(answer, str) else answer
    assert "forecast" in body, body
    return body


@pytest.mark.parametrize("way", ["json_serializer", "string_payload"])
def test_predict_with_json_and_the_blogs_string_payload(served, way):
    body = forecast_of(served[way])
    assert body["customer"] == "7"
    assert len(body["forecast"]) == 3


def test_predict_with_the_sdks_default_serializer(served):
    # The SDK's default Predictor sends the JSON bytes as application/octet-stream.
    assert served["http_default_content_type"]["status"] == 200, served["http_default_content_type"]
    assert forecast_of(served["default_serializer"])["customer"] == "7"


def test_a_target_model_that_is_not_the_one_loaded_is_a_4xx_not_its_forecast(served):
    assert served["http_matching_target_model"]["status"] == 200
    mismatched = served["http_mismatched_target_model"]
    assert 400 <= mismatched["status"] < 500, mismatched
    assert "forecast" not in json.loads(mismatched["answer"])
    # Through the SDK (its local runtime hides the status): the error body, never customer 7's forecast.
    answer = json.loads(served["mismatched_target_model"].get("answer", "{}"))
    assert "forecast" not in answer and answer.get("error") == "target_model_mismatch", answer
