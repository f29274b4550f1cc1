"""The local stand-in for a sharded multi-instance training job."""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from pathlib import Path

import pytest

from fleetcast.cli import main
from fleetcast.local.sharding import assign_round_robin
from fleetcast.local.training import default_work_dir
from fleetcast.model import archive, manifest
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


def runs(models: Path) -> list[Path]:
    return sorted(p for p in models.iterdir() if p.is_dir())


def fleet_manifest(models: Path) -> dict[str, manifest.ManifestEntry]:
    return manifest.load(manifest.read_file(models / manifest.MANIFEST_NAME))


@pytest.mark.slow
def test_local_train_runs_each_customer_on_exactly_one_host(tmp_path: Path):
    data, models, work = tmp_path / "customers", tmp_path / "models", tmp_path / "work"
    write_folder_layout(data, range(7))
    common = ["--data", str(data), "--models", str(models), "--work-dir", str(work)]
    settings = ["--hyperparameters", "holdout_days=0", "uncertainty_samples=0"]
    assert main(["local-train", *common, "--hosts", "3", *settings]) == 0
    [first] = runs(models)
    assert first.name.startswith("local-")
    assert sorted(p.name for p in first.glob("*.tar.gz")) == [f"{i}.tar.gz" for i in range(7)]
    assert not list(models.glob("*.tar.gz"))  # nothing unversioned at the top of the prefix
    published = fleet_manifest(models)
    assert {c: e.target_model for c, e in published.items()} == {
        str(i): f"{first.name}/{i}.tar.gz" for i in range(7)
    }
    hosts = ("algo-1", "algo-2", "algo-3")
    assert sorted(p.name for p in first.glob("manifest*.csv.gz")) == [
        "manifest-algo-1.csv.gz", "manifest-algo-2.csv.gz", "manifest-algo-3.csv.gz", "manifest.csv.gz"
    ]  # fmt: skip

    with open(work / "report.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    trained_by = {row["customer"]: row["host"] for row in rows if row["status"] == "trained"}
    assert sorted(trained_by) == [str(i) for i in range(7)]
    assert len(rows) == 7  # nobody trained twice
    assert set(trained_by.values()) == set(hosts)
    for host in hosts:
        config = json.loads((work / host / "input" / "config" / "resourceconfig.json").read_text())
        assert config == {"current_host": host, "hosts": list(hosts), "network_interface_name": "eth0"}
        channels = json.loads((work / host / "input" / "config" / "inputdataconfig.json").read_text())
        assert channels["train"]["S3DistributionType"] == "ShardedByS3Key"
        assert "manifest" not in channels  # the first run has no previous manifest
        hyperparameters = json.loads((work / host / "input" / "config" / "hyperparameters.json").read_text())
        assert all(isinstance(v, str) for v in hyperparameters.values())
    assert all(archive.read_metadata_or_none(p) for p in first.glob("*.tar.gz"))

    # A second run resumes from the manifest: every host gets it as a channel, nothing is retrained,
    # copied or restored, and the manifest still names the first run's archives.
    assert main(["local-train", *common, "--hosts", "2", *settings]) == 0
    with open(work / "report.csv", newline="") as handle:
        assert {row["status"] for row in csv.DictReader(handle)} == {"skipped"}
    first_again, second = runs(models)
    assert first_again == first
    assert not list(second.glob("*.tar.gz"))
    assert fleet_manifest(models) == published
    for host in ("algo-1", "algo-2"):
        channels = json.loads((work / host / "input" / "config" / "inputdataconfig.json").read_text())
        assert channels["manifest"]["S3DistributionType"] == "FullyReplicated"
        assert not list((work / host / "checkpoints").glob("*.tar.gz"))  # no previous model restored


def change_customer(data: Path, customer: int) -> None:
    path = data / str(customer) / "data.csv"
    lines = path.read_text().splitlines()
    stamp, value = lines[5].split(",")
    lines[5] = f"{stamp},{float(value) + 50}"
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_a_changed_customer_gets_a_new_version_and_the_others_keep_theirs(tmp_path: Path):
    data, models = tmp_path / "customers", tmp_path / "models"
    write_folder_layout(data, range(4))
    common = ["--data", str(data), "--models", str(models), "--hosts", "2"]
    settings = ["--hyperparameters", "holdout_days=0", "uncertainty_samples=0"]
    assert main(["local-train", *common, "--run-id", "r1", *settings]) == 0
    stamps = {p.name: p.stat().st_mtime_ns for p in (models / "r1").iterdir()}
    change_customer(data, 2)
    assert main(["local-train", *common, "--run-id", "r2", *settings]) == 0

    published = fleet_manifest(models)
    assert {c: e.target_model for c, e in published.items()} == {
        "0": "r1/0.tar.gz", "1": "r1/1.tar.gz", "2": "r2/2.tar.gz", "3": "r1/3.tar.gz"
    }  # fmt: skip
    assert published["2"].run == "r2" and published["0"].run == "r1"
    assert sorted(p.name for p in (models / "r2").glob("*.tar.gz")) == ["2.tar.gz"]
    assert {p.name: p.stat().st_mtime_ns for p in (models / "r1").iterdir()} == stamps  # never touched
    # Each published manifest is kept in its run's folder; the top one is the newest.
    assert manifest.load(manifest.read_file(models / "r1" / manifest.MANIFEST_NAME))["2"].run == "r1"
    assert (models / "r2" / manifest.MANIFEST_NAME).read_bytes() == (models / "manifest.csv.gz").read_bytes()
    metadata = archive.read_metadata_or_none(models / "r2" / "2.tar.gz")
    assert metadata is not None and metadata["data_sha256"] == published["2"].data_sha256


@pytest.mark.slow
def test_starting_a_run_again_restores_only_its_own_archives_and_keeps_them(tmp_path: Path):
    """A spot restart: SageMaker restores the run's checkpoint prefix, which holds only this run's files."""
    data, models, work = tmp_path / "customers", tmp_path / "models", tmp_path / "work"
    write_folder_layout(data, range(3))
    common = ["--data", str(data), "--models", str(models), "--work-dir", str(work), "--hosts", "1"]
    settings = ["--hyperparameters", "holdout_days=0", "uncertainty_samples=0"]
    assert main(["local-train", *common, "--run-id", "old", *settings]) == 0
    change_customer(data, 0)
    change_customer(data, 1)
    assert main(["local-train", *common, "--run-id", "new", *settings]) == 0
    # Make that an attempt interrupted after customer 0: unpublished, customer 1 not written.
    (models / "new" / "1.tar.gz").unlink()
    for written in (models / "new").glob("manifest*"):
        written.unlink()
    shutil.copyfile(models / "old" / manifest.MANIFEST_NAME, models / manifest.MANIFEST_NAME)
    stamp = (models / "new" / "0.tar.gz").stat().st_mtime_ns
    assert main(["local-train", *common, "--run-id", "new", *settings]) == 0

    restored = {p.name for p in (work / "algo-1" / "checkpoints").iterdir()} - {"manifest-algo-1.csv.gz"}
    assert restored >= {"0.tar.gz", "1.tar.gz"} and not any(n.startswith("old") for n in restored)
    with open(work / "report.csv", newline="") as handle:
        statuses = {row["customer"]: row["status"] for row in csv.DictReader(handle)}
    assert statuses == {"0": "skipped", "1": "trained", "2": "skipped"}
    assert (models / "new" / "0.tar.gz").stat().st_mtime_ns == stamp
    assert {c: e.target_model for c, e in fleet_manifest(models).items()} == {
        "0": "new/0.tar.gz", "1": "new/1.tar.gz", "2": "old/2.tar.gz"
    }  # fmt: skip


def test_a_failed_run_is_not_published(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    data, models = tmp_path / "customers", tmp_path / "models"
    for name in ("a", "b"):
        (data / name).mkdir(parents=True)
        (data / name / "data.csv").write_text("timestamp,consumption\n2022-01-01,1\n")
    args = ["local-train", "--data", str(data), "--models", str(models), "--hosts", "1", "--run-id", "r1"]
    assert main(args) == 1
    assert not (models / manifest.MANIFEST_NAME).exists()
    assert "run r1 is not published" in caplog.text


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
    [run] = runs(models)
    assert sorted(p.name for p in run.glob("*.tar.gz")) == [f"{i}.tar.gz" for i in range(7)]

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
