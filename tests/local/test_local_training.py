"""The local stand-in for a sharded multi-instance training job."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

import pytest

from fleetcast.cli import main
from fleetcast.local.sharding import assign_round_robin
from fleetcast.local.training import default_work_dir
from fleetcast.model import archive
from tests.helpers import write_folder_layout


@pytest.mark.parametrize("hosts", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("count", [0, 1, 3, 7, 23])
def test_round_robin_is_a_partition(hosts: int, count: int):
    keys = [f"{i}/data.csv" for i in range(count)]
    shards = assign_round_robin(list(reversed(keys)), hosts)
    assert list(shards) == [f"algo-{i}" for i in range(1, hosts + 1)]
    assigned = [key for shard in shards.values() for key in shard]
    assert sorted(assigned) == sorted(keys)  # complete
    assert len(assigned) == len(set(assigned))  # disjoint
    sizes = [len(s) for s in shards.values()]
    assert max(sizes) - min(sizes) <= 1  # fair
    assert assign_round_robin(keys, hosts) == shards  # deterministic, order-independent


def test_more_hosts_than_keys_leaves_some_hosts_empty():
    shards = assign_round_robin(["a", "b"], 4)
    assert shards == {"algo-1": ["a"], "algo-2": ["b"], "algo-3": [], "algo-4": []}


@pytest.mark.slow
def test_local_train_runs_each_customer_on_exactly_one_host(tmp_path: Path):
    data, models, work = tmp_path / "customers", tmp_path / "models", tmp_path / "work"
    write_folder_layout(data, range(7))
    common = ["--data", str(data), "--models", str(models), "--work-dir", str(work)]
    settings = ["--hyperparameters", "holdout_days=0", "uncertainty_samples=0"]
    assert main(["local-train", *common, "--hosts", "3", *settings]) == 0
    assert sorted(p.name for p in models.glob("*.tar.gz")) == [f"{i}.tar.gz" for i in range(7)]

    with open(work / "report.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    trained_by = {row["customer"]: row["host"] for row in rows if row["status"] == "trained"}
    assert sorted(trained_by) == [str(i) for i in range(7)]
    assert len(rows) == 7  # nobody trained twice
    assert set(trained_by.values()) == {"algo-1", "algo-2", "algo-3"}
    for host in ("algo-1", "algo-2", "algo-3"):
        config = json.loads((work / host / "input" / "config" / "resourceconfig.json").read_text())
        assert config == {
            "current_host": host,
            "hosts": ["algo-1", "algo-2", "algo-3"],
            "network_interface_name": "eth0",
        }
        channels = json.loads((work / host / "input" / "config" / "inputdataconfig.json").read_text())
        assert channels["train"]["S3DistributionType"] == "ShardedByS3Key"
        hyperparameters = json.loads((work / host / "input" / "config" / "hyperparameters.json").read_text())
        assert all(isinstance(v, str) for v in hyperparameters.values())
    assert all(archive.read_metadata_or_none(p) for p in models.glob("*.tar.gz"))

    # A second run is a resume: every host is handed the prefix's checkpoints, so nothing retrains.
    assert main(["local-train", *common, "--hosts", "2", *settings]) == 0
    with open(work / "report.csv", newline="") as handle:
        assert {row["status"] for row in csv.DictReader(handle)} == {"skipped"}


def test_the_default_work_dir_sits_beside_the_models_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert default_work_dir(tmp_path / "demo" / "models") == tmp_path / "demo" / "models-local-train"
    monkeypatch.chdir(tmp_path)
    assert default_work_dir(Path("models")) == tmp_path / "models-local-train"


def test_local_train_keeps_its_work_and_report_beside_the_models_and_logs_the_report_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where a temp work dir would have gone
    data, models = tmp_path / "customers", tmp_path / "models"
    write_folder_layout(data, range(2))
    settings = ["--hyperparameters", "holdout_days=0", "uncertainty_samples=0"]
    assert main(["local-train", "--data", str(data), "--models", str(models), "--hosts", "1", *settings]) == 0

    work = tmp_path / "models-local-train"
    report = work / "report.csv"
    with open(report, newline="") as handle:
        assert sorted(row["customer"] for row in csv.DictReader(handle)) == ["0", "1"]
    assert (work / "algo-1" / "input" / "config" / "resourceconfig.json").is_file()
    assert f"report: {report}" in caplog.text
    assert list(temp.iterdir()) == []


def test_local_train_rejects_bad_requests(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    data = tmp_path / "customers"
    write_folder_layout(data, range(2))
    assert main(["local-train", "--data", str(data), "--hosts", "3", "--models", str(tmp_path / "m")]) == 2
    assert "--hosts must be between 1 and the number of input objects (2)" in caplog.text
    assert (
        main(["local-train", "--data", str(data), "--models", str(tmp_path / "m"), "--hyperparameters", "x"])
        == 2
    )
    assert "'x' is not KEY=VALUE" in caplog.text
    assert main(["local-train", "--data", str(tmp_path / "none"), "--models", str(tmp_path / "m")]) == 2
    assert "no input files" in caplog.text


def test_local_train_fully_replicated_lets_each_host_pick_its_customers(tmp_path: Path):
    from fleetcast.local.training import local_train_main
    from fleetcast.training.config import host_of_customer

    data, models, work = tmp_path / "customers", tmp_path / "models", tmp_path / "work"
    write_folder_layout(data, range(7))
    settings = ["holdout_days=0", "uncertainty_samples=0"]
    assert local_train_main(data, 3, models, work, settings, distribution="FullyReplicated") == 0
    assert sorted(p.name for p in models.glob("*.tar.gz")) == [f"{i}.tar.gz" for i in range(7)]

    with open(work / "report.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["customer"] for row in rows) == [str(i) for i in range(7)]  # each exactly once
    hosts = ["algo-1", "algo-2", "algo-3"]
    assert all(row["host"] == host_of_customer(row["customer"], hosts) for row in rows)
    for host in hosts:
        root = work / host
        channels = json.loads((root / "input" / "config" / "inputdataconfig.json").read_text())
        assert channels["train"]["S3DistributionType"] == "FullyReplicated"
        assert len(list((root / "input" / "data" / "train").rglob("*.csv"))) == 7  # the whole channel
        # A job with a CheckpointConfig: the models go to the checkpoint prefix, not into model.tar.gz.
        assert (root / "input" / "config" / "checkpointconfig.json").exists()
        assert not list((root / "model").glob("*.tar.gz"))
