"""The local endpoint caches by TargetModel and never revalidates, as SageMaker's multi-model endpoint
does: a model retrained in place under its old name goes on serving stale forecasts, while versioned names
(`<run>/<customer>.tar.gz`, resolved through the fleet manifest) serve the new model at once.

Real parts only: the lean server, the local endpoint, boto3 through fleetcast.client, and the manifest
published by `merge_run`, as `local-train` publishes it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fleetcast.client import TargetModels, request_forecast, runtime_client
from fleetcast.local.container_client import ContainerClient
from fleetcast.local.endpoint import MultiModelEndpoint
from fleetcast.local.endpoint_http import RunningEndpoint, start_endpoint
from fleetcast.local.model_source import LocalFolderSource
from fleetcast.model import manifest
from fleetcast.model.settings import ProphetSettings
from fleetcast.models_prefix import FolderPrefix, merge_run
from tests.serving.models import archive_model
from tests.support.servers import start_server

pytestmark = pytest.mark.slow  # a real server process

CUSTOMERS = ("0", "1", "2", "3")
OLD_LEVEL, NEW_LEVEL = 100.0, 500.0  # a retrain moves every forecast from about 100 to about 500
SETTINGS = ProphetSettings(
    yearly_seasonality=False, daily_seasonality=False, weekly_seasonality=False, uncertainty_samples=0
)


def history(customer: str, level: float) -> pd.DataFrame:
    rng = np.random.default_rng(int(customer))
    ds = pd.date_range("2022-01-01", periods=60, freq="D")
    return pd.DataFrame({"ds": ds, "y": level + rng.normal(0, 1, len(ds))})


def train(folder: Path, level: float) -> None:
    for customer in CUSTOMERS:
        archive_model(folder, customer, history(customer, level), SETTINGS)


def publish(models: Path, run: str, level: float) -> None:
    """A run as `train` leaves it (archives and a host manifest in its folder), then published."""
    train(models / run, level)
    rows = [manifest.entry_for(c, run, f"level-{level}", "s", "configured", None) for c in CUSTOMERS]
    manifest.write_manifest(models / run / manifest.host_manifest_name("algo-1"), rows)
    merge_run(FolderPrefix(models), run)


@pytest.fixture(scope="module")
def container(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContainerClient]:
    root = tmp_path_factory.mktemp("lean")
    with start_server("lean", root, {"SAGEMAKER_MULTI_MODEL": "true"}, workers=1) as server:
        yield ContainerClient(server.url)


def endpoint_over(models: Path, container: ContainerClient, cache: Path) -> RunningEndpoint:
    endpoint = MultiModelEndpoint(LocalFolderSource(models), container, cache, manifest=FolderPrefix(models))
    return start_endpoint(endpoint)


def levels(url: str, targets: TargetModels) -> dict[str, float]:
    client = runtime_client(url)
    return {
        customer: float(
            np.mean(
                [
                    row["yhat"]
                    for row in request_forecast(client, "fleetcast", customer, 7, targets=targets).rows
                ]
            )
        )
        for customer in CUSTOMERS
    }


def stale(forecasts: dict[str, float]) -> int:
    return sum(abs(level - OLD_LEVEL) < abs(level - NEW_LEVEL) for level in forecasts.values())


def test_a_model_overwritten_in_place_keeps_serving_stale_forecasts(
    tmp_path: Path, container: ContainerClient
):
    models = tmp_path / "models"
    train(models, OLD_LEVEL)
    running = endpoint_over(models, container, tmp_path / "cache")
    try:
        unversioned = TargetModels()  # <customer>.tar.gz, the same name for every training run
        assert stale(levels(running.url, unversioned)) == len(CUSTOMERS)  # the first training run
        train(models, NEW_LEVEL)  # the retrain overwrites each archive under its old name
        assert stale(levels(running.url, unversioned)) == len(CUSTOMERS)  # every forecast is stale
    finally:
        running.stop()
        for model in container.loaded_models():
            container.unload(model["modelName"])


def test_versioned_names_serve_the_retrained_models_at_once(tmp_path: Path, container: ContainerClient):
    models = tmp_path / "models"
    publish(models, "run-1", OLD_LEVEL)
    running = endpoint_over(models, container, tmp_path / "cache")
    try:
        assert stale(levels(running.url, TargetModels(str(models)))) == len(CUSTOMERS)
        publish(models, "run-2", NEW_LEVEL)
        # A fresh resolution (what each `fleetcast invoke` makes) reads the new manifest: zero stale.
        assert stale(levels(running.url, TargetModels(str(models)))) == 0
        # The endpoint answers the same resolution for people and scripts.
        with urllib.request.urlopen(f"{running.url}/fleetcast/customers/2", timeout=10) as response:
            assert json.load(response) == {"customer": "2", "target_model": "run-2/2.tar.gz", "run": "run-2"}
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{running.url}/fleetcast/customers/nobody", timeout=10)
        assert refused.value.code == 404
        assert "has no model in the fleet manifest" in json.load(refused.value)["message"]
    finally:
        running.stop()
        for model in container.loaded_models():
            container.unload(model["modelName"])
