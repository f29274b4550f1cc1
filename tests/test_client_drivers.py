"""Future regressor values from the command line to the served forecast: `fleetcast invoke --regressor`,
`launch invoke --regressor` and `fleetcast plot --regressor`, against lean behind the local endpoint."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetcast.client import invoke_request, regressor_option, regressor_values
from fleetcast.model.settings import ProphetSettings, Regressor
from tests.serving.models import BuiltModel, build_model
from tests.serving.test_drivers_serving import drivers_history
from tests.support.servers import start_lean, start_local_endpoint
from tests.test_client import no_aws_environment, unversioned_manifest

DRIVERS = ProphetSettings(
    uncertainty_samples=100, country_holidays="US", regressors=(Regressor("temperature"),)
)


def test_the_regressor_option_and_the_body_it_makes():
    assert regressor_option("temperature=4.1,3.8,5") == ("temperature", [4.1, 3.8, 5.0])
    for bad in ("temperature", "=1,2", "temperature=1,,2", "temperature=warm"):
        with pytest.raises(argparse.ArgumentTypeError, match="NAME=V1,V2"):
            regressor_option(bad)
    values = regressor_values([("temperature", [4.1, 3.8, 5.0])], 3)
    body = json.loads(invoke_request("e", "7", 3, regressors=values)["Body"])
    assert body == {"period": 3, "regressors": {"temperature": [4.1, 3.8, 5.0]}}
    assert json.loads(invoke_request("e", "7", 3)["Body"]) == {"period": 3}  # today's request unchanged
    with pytest.raises(ValueError, match="has 2 values; --period 3 needs 3"):
        regressor_values([("temperature", [1.0, 2.0])], 3)
    with pytest.raises(ValueError, match="given twice"):
        regressor_values([("t", [1.0]), ("t", [2.0])], 1)


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory) -> Iterator[tuple[str, BuiltModel]]:
    root = tmp_path_factory.mktemp("client-drivers")
    model = build_model(root, "21", drivers_history(21), DRIVERS)
    with (
        start_lean(root / "lean", workers=1) as lean,
        start_local_endpoint(root / "endpoint", models=root / "archives", container=lean.url) as front,
    ):
        yield front.url, model


def _run(tmp_path: Path, *argv: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *argv],
        env=no_aws_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


@pytest.mark.slow
def test_invoke_and_plot_send_the_regressors(endpoint, tmp_path: Path):
    url, model = endpoint
    invoke = ["fleetcast.cli", "invoke", "--endpoint-url", url, "--customer", "21", "--period", "3"]
    done = _run(tmp_path, *invoke, "--regressor", "temperature=4.1,3.8,5.0", "--json")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["forecast"]) == 3
    missing = _run(tmp_path, *invoke)
    assert missing.returncode == 1
    assert "'temperature'" in missing.stderr and "3 values" in missing.stderr
    wrong = _run(tmp_path, *invoke, "--regressor", "temperature=4.1")
    assert wrong.returncode == 2 and "--period 3 needs 3" in wrong.stderr

    launch = ["launch", "invoke", "--endpoint-url", url, "--endpoint-name", "fleetcast", "--customer", "21"]
    launch += ["--manifest", unversioned_manifest(tmp_path, ["21"])]
    done = _run(tmp_path, *launch, "--period", "2", "--regressor", "temperature=1,2", "--region", "us-east-1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("customer 21: 2 steps")

    for source in (
        ["--models", str(model.archive.parent)],
        ["--models", str(model.archive.parent), "--endpoint-url", url],
    ):
        out = tmp_path / f"plot-{len(source)}.png"
        plot = ["fleetcast.cli", "plot", *source, "--customer", "21", "--period", "3", "--out", str(out)]
        done = _run(tmp_path, *plot, "--regressor", "temperature=4.1,3.8,5.0")
        assert done.returncode == 0, done.stderr
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        refused = _run(tmp_path, *plot)
        assert refused.returncode == 1 and "'temperature'" in refused.stdout + refused.stderr  # logged
