"""A run's id, and the host manifest a job leaves behind, at any size."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from fleetcast.model import manifest
from fleetcast.training.config import ConfigError, ResourceConfig, TrainingConfig, parse_hyperparameters
from fleetcast.training.resume import HostManifest, resolve_run_id


def test_the_run_id_is_the_hyperparameter_else_the_job_name_else_a_lone_host_s_own():
    one, two = ResourceConfig("algo-1", ["algo-1"]), ResourceConfig("algo-1", ["algo-1", "algo-2"])
    named = parse_hyperparameters({"run_id": "nightly-7"})
    assert resolve_run_id(named, two, {"TRAINING_JOB_NAME": "job-1"}) == "nightly-7"
    assert resolve_run_id(TrainingConfig(), two, {"TRAINING_JOB_NAME": "job-1"}) == "job-1"
    assert resolve_run_id(TrainingConfig(), one, {}).startswith("manual-")
    with pytest.raises(ConfigError, match="no run id"):
        resolve_run_id(TrainingConfig(), two, {})
    with pytest.raises(ConfigError, match="cannot name a run"):
        resolve_run_id(TrainingConfig(), one, {"TRAINING_JOB_NAME": "a/b"})


def test_the_host_manifest_spills_sorted_runs_and_writes_one_sorted_file(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(HostManifest, "SPILL_ROWS", 3)
    staging, checkpoints = tmp_path / "staging", tmp_path / "checkpoints"
    staging.mkdir()
    customers = [str(i) for i in range(10)]
    random.Random(1).shuffle(customers)
    host = HostManifest("algo-1", staging)
    for customer in customers:
        host.add(manifest.entry_for(customer, "r", "d", "s", "m", None))
    host.add(None)  # a failed customer has no row
    assert len(list(staging.iterdir())) == 3  # three spilled runs of three rows
    written = host.write(checkpoints, staging)
    assert written.name == "manifest-algo-1.csv.gz"
    assert [e.customer for e in manifest.read_file(written)] == sorted(customers)
    assert list(staging.iterdir()) == []


def test_an_empty_previous_manifest_keeps_nothing(tmp_path: Path):
    """What a pipeline's first run reads (launch pipeline writes it): every customer is trained."""
    from fleetcast.paths import SageMakerPaths
    from fleetcast.training.resume import load_previous

    paths = SageMakerPaths(tmp_path)
    manifest.write_manifest(paths.manifest_channel_dir / manifest.MANIFEST_NAME, [])
    assert load_previous(paths, lambda: {"c1", "c2"}) == {}
    written = [manifest.entry_for("c1", "r", "d", "s", "m", None)]
    manifest.write_manifest(paths.manifest_channel_dir / manifest.MANIFEST_NAME, written)
    assert list(load_previous(paths, lambda: {"c1", "c2"})) == ["c1"]
