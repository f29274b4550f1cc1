"""The `train` entry point end to end, on small generated fleets under a relocated /opt/ml."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from fleetcast.cli import main
from fleetcast.model import archive
from fleetcast.model.prophet_model import model_from_json
from tests.helpers import write_bucket_layout, write_flat_layout, write_folder_layout, write_hyperparameters


def channel(root: Path) -> Path:
    return root / "input" / "data" / "train"


def report(root: Path, host: str = "algo-1") -> dict[str, dict[str, str]]:
    with open(root / "output" / "data" / f"report-{host}.csv", newline="") as handle:
        return {row["customer"]: row for row in csv.DictReader(handle)}


def archive_mtimes(root: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (root / "checkpoints").glob("*.tar.gz")}


def test_trains_every_customer_and_the_model_forecasts_after_its_history(sm_root: Path):
    write_folder_layout(channel(sm_root), range(4))
    write_hyperparameters(sm_root, workers="2", uncertainty_samples="0")
    assert main(["train"]) == 0

    assert sorted(archive_mtimes(sm_root)) == ["0.tar.gz", "1.tar.gz", "2.tar.gz", "3.tar.gz"]
    model_json, metadata = archive.read_archive(sm_root / "checkpoints" / "2.tar.gz")
    assert metadata["customer"] == "2"
    assert metadata["rows"] == 120
    assert metadata["freq"] == "D"
    assert metadata["metrics"]["holdout_rows"] == 7
    assert metadata["metrics"]["smape"] < 30
    assert set(metadata["versions"]) >= {"prophet", "pandas", "fleetcast"}

    model = model_from_json(model_json)
    last = pd.Timestamp(metadata["end"])
    assert last == model.history["ds"].max()  # refitted on everything, holdout included
    future = pd.DataFrame({"ds": pd.date_range(last + pd.Timedelta(days=1), periods=7, freq="D")})
    forecast = model.predict(future)
    assert forecast["ds"].min() > last
    assert forecast["yhat"].between(0, 1500).all()

    rows = report(sm_root)
    assert {r["status"] for r in rows.values()} == {"trained"}
    summary = json.loads((sm_root / "model" / "fleet-summary-algo-1.json").read_text())
    assert summary["counts"] == {"trained": 4, "skipped": 0, "failed": 0}
    # every trained customer is counted under the engine its report row names
    engines = [r["fit_engine"] or "unknown" for r in rows.values()]
    assert summary["fit_engines"] == {e: engines.count(e) for e in set(engines)}
    assert not (sm_root / "output" / "failure").exists()


@pytest.mark.parametrize("writer", [write_flat_layout, write_bucket_layout], ids=["flat", "buckets"])
def test_other_input_layouts(sm_root: Path, writer):
    writer(channel(sm_root), range(3))
    write_hyperparameters(sm_root, workers="2", holdout_days="0", uncertainty_samples="0")
    assert main(["train"]) == 0
    assert sorted(archive_mtimes(sm_root)) == ["0.tar.gz", "1.tar.gz", "2.tar.gz"]
    assert archive.read_archive(sm_root / "checkpoints" / "1.tar.gz")[1]["metrics"] is None


def test_resume_retrains_only_changed_and_corrupt_customers(sm_root: Path):
    write_folder_layout(channel(sm_root), range(4))
    write_hyperparameters(sm_root, workers="1", holdout_days="0", uncertainty_samples="0")
    assert main(["train"]) == 0
    before = archive_mtimes(sm_root)

    # customer 1 gets new data; customer 2's checkpoint is cut short (a killed sync or disk-full)
    data = channel(sm_root) / "1" / "data.csv"
    data.write_text(
        data.read_text().replace(",", ",1", 1).replace("\n2022-01-05 00:00:00,", "\n2022-01-05 00:00:00,9")
    )
    corrupt = sm_root / "checkpoints" / "2.tar.gz"
    corrupt.write_bytes(corrupt.read_bytes()[:200])
    time.sleep(0.01)
    assert main(["train"]) == 0

    after = archive_mtimes(sm_root)
    statuses = {c: r["status"] for c, r in report(sm_root).items()}
    assert statuses == {"0": "skipped", "1": "trained", "2": "trained", "3": "skipped"}
    assert after["0.tar.gz"] == before["0.tar.gz"] and after["3.tar.gz"] == before["3.tar.gz"]
    assert archive.read_metadata_or_none(corrupt) is not None


def test_changed_hyperparameters_retrain_everything(sm_root: Path):
    write_folder_layout(channel(sm_root), range(2))
    write_hyperparameters(sm_root, workers="1", holdout_days="0", uncertainty_samples="0")
    assert main(["train"]) == 0
    write_hyperparameters(sm_root, workers="1", holdout_days="0", uncertainty_samples="0", n_changepoints="5")
    assert main(["train"]) == 0
    assert {r["status"] for r in report(sm_root).values()} == {"trained"}


def test_other_hosts_checkpoints_are_left_alone(sm_root: Path):
    write_folder_layout(channel(sm_root), range(2))
    write_hyperparameters(sm_root, workers="1", holdout_days="0", uncertainty_samples="0")
    (sm_root / "checkpoints").mkdir()
    foreign = archive.write_archive(sm_root / "checkpoints", "99", "{}", {"customer": "99"})
    stamp = foreign.stat().st_mtime_ns
    assert main(["train"]) == 0
    assert foreign.stat().st_mtime_ns == stamp
    assert "99" not in report(sm_root)


def test_bad_customers_are_isolated(sm_root: Path):
    write_folder_layout(channel(sm_root), range(5))
    bad = channel(sm_root)
    (bad / "short").mkdir()
    (bad / "short" / "data.csv").write_text("timestamp,consumption\n2022-01-01,1\n2022-01-02,2\n")
    (bad / "garbage").mkdir()
    (bad / "garbage" / "data.csv").write_text("timestamp,consumption\n" + "nope,nan\n" * 50)
    write_hyperparameters(
        sm_root, workers="2", holdout_days="0", uncertainty_samples="0", max_failure_rate="0.5"
    )
    assert main(["train"]) == 0

    rows = report(sm_root)
    assert (
        rows["short"]["status"] == "failed" and "only 2 usable rows (min_rows=30)" in rows["short"]["reason"]
    )
    assert (
        rows["garbage"]["status"] == "failed"
        and "50 rows had no valid timestamp or value" in rows["garbage"]["reason"]
    )
    assert sum(r["status"] == "trained" for r in rows.values()) == 5
    assert not (sm_root / "checkpoints" / "short.tar.gz").exists()


def test_too_many_failures_fail_the_job_with_a_reason(sm_root: Path):
    write_folder_layout(channel(sm_root), range(2))
    for name in ("a", "b"):
        (channel(sm_root) / name).mkdir()
        (channel(sm_root) / name / "data.csv").write_text("timestamp,consumption\n2022-01-01,1\n")
    write_hyperparameters(sm_root, workers="1", holdout_days="0", max_failure_rate="0.1")
    assert main(["train"]) == 1
    reason = (sm_root / "output" / "failure").read_text()
    assert reason.startswith("2 of 4 customers failed (50.0% > max_failure_rate 10.0%)")
    assert "a: only 1 usable rows" in reason
    assert len((sm_root / "checkpoints").glob("*.tar.gz").__next__().name) > 0  # good ones still written


def test_no_input_and_bad_config_fail_with_the_reason(sm_root: Path):
    assert main(["train"]) == 1
    assert "training channel" in (sm_root / "output" / "failure").read_text()

    write_folder_layout(channel(sm_root), range(1))
    write_hyperparameters(sm_root, seasonality="yearly")
    assert main(["train"]) == 1
    assert "unknown hyperparameter 'seasonality'" in (sm_root / "output" / "failure").read_text()


def test_duplicate_customer_ids_are_reported_not_overwritten(sm_root: Path):
    write_folder_layout(channel(sm_root), range(2))
    write_flat_layout(channel(sm_root) / "flat", range(1, 2))
    write_hyperparameters(sm_root, workers="1", holdout_days="0", max_failure_rate="0.5")
    assert main(["train"]) == 0
    rows = report(sm_root)
    assert rows["1"]["status"] in ("trained", "failed")
    assert (
        sum(1 for line in (sm_root / "output" / "data" / "report-algo-1.csv").open() if line.startswith("1,"))
        == 2
    )


def test_sigterm_finishes_in_flight_fits_and_leaves_no_partial_checkpoint(sm_root: Path):
    write_folder_layout(channel(sm_root), range(60), rows=120)
    write_hyperparameters(sm_root, workers="2", holdout_days="7", progress_seconds="0.2")
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(sm_root), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "fleetcast.cli", "train"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:  # wait until fitting is under way
        if "trained " in line and "/60 customers" in line:
            break
    process.send_signal(signal.SIGTERM)
    output = process.stdout.read()
    assert process.wait(timeout=60) == 143, output

    assert all(not p.name.startswith(".tmp-") for p in (sm_root / "checkpoints").iterdir())
    archives = list((sm_root / "checkpoints").glob("*.tar.gz"))
    assert 0 < len(archives) < 60
    assert all(archive.read_metadata_or_none(p) is not None for p in archives)
    assert "stopped by SIGTERM" in (sm_root / "output" / "failure").read_text()

    # a restarted job resumes: it skips exactly what the stopped one finished
    write_hyperparameters(sm_root, workers="2", holdout_days="7")
    assert main(["train"]) == 0
    statuses = [r["status"] for r in report(sm_root).values()]
    assert statuses.count("skipped") == len(archives)
    assert statuses.count("trained") == 60 - len(archives)


def test_archives_are_staged_beside_the_checkpoints_on_the_same_mount(sm_root: Path, tmp_path: Path):
    from fleetcast.paths import SageMakerPaths
    from fleetcast.training.job import _mount_of, staging_dir

    assert _mount_of(Path("/proc/self/status")) == "/proc"
    assert _mount_of(tmp_path) != "/proc"
    paths = SageMakerPaths(sm_root)
    paths.checkpoints_dir.mkdir()
    assert staging_dir(paths) == paths.archive_staging_dir == sm_root / "checkpoints-staging"


def test_staging_on_another_mount_falls_back_loudly(sm_root: Path, caplog: pytest.LogCaptureFixture):
    import shutil
    import tempfile

    from fleetcast.paths import SageMakerPaths
    from fleetcast.training.job import staging_dir

    elsewhere = Path(tempfile.mkdtemp(dir="/dev/shm"))  # a tmpfs: another mount than the test's tmp dir
    try:
        (sm_root / "checkpoints").symlink_to(elsewhere)
        paths = SageMakerPaths(sm_root)
        assert staging_dir(paths) == paths.checkpoints_dir
        assert "is not on the mount of" in caplog.text
    finally:
        shutil.rmtree(elsewhere)


def test_an_empty_shard_of_a_sharded_job_is_nothing_to_do(sm_root: Path, monkeypatch: pytest.MonkeyPatch):
    """ShardedByS3Key with fewer objects than hosts can leave a host without input: it trains none, fine."""
    monkeypatch.setenv("TRAINING_JOB_NAME", "job-1")  # as SageMaker sets it on every host
    config = sm_root / "input" / "config"
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-3", "hosts": ["algo-1", "algo-2", "algo-3"]})
    )
    (config / "inputdataconfig.json").write_text(
        json.dumps({"train": {"S3DistributionType": "ShardedByS3Key"}})
    )
    channel(sm_root).mkdir(parents=True)
    write_hyperparameters(sm_root)
    assert main(["train"]) == 0, (sm_root / "output" / "failure").read_text()
    summary = json.loads((sm_root / "model" / "fleet-summary-algo-3.json").read_text())
    assert summary["customers"] == 0
    # A single host with an empty channel is a misconfigured job, and says so.
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    assert main(["train"]) == 1
    assert "no customer CSV files" in (sm_root / "output" / "failure").read_text()


def test_a_job_never_removes_a_file_from_its_checkpoint_folder(
    sm_root: Path, monkeypatch: pytest.MonkeyPatch
):
    """SageMaker mirrors a local delete in the checkpoint folder to S3: what a job finds there, it keeps."""
    monkeypatch.setenv("TRAINING_JOB_NAME", "job-1")
    write_folder_layout(channel(sm_root), range(2))
    write_hyperparameters(sm_root, workers="1", holdout_days="0", uncertainty_samples="0")
    checkpoints = sm_root / "checkpoints"
    checkpoints.mkdir()
    found = {
        ".tmp-left-by-a-killed-writer.tar.gz": b"partial",
        "manifest-algo-9.csv.gz": b"another host's",
        "notes.txt": b"anything",
        "1.tar.gz": b"a corrupt archive of this run",
    }
    for name, payload in found.items():
        (checkpoints / name).write_bytes(payload)
    assert main(["train"]) == 0
    assert {p.name for p in checkpoints.iterdir()} == {*found, "0.tar.gz", "manifest-algo-1.csv.gz"}
    assert all((checkpoints / n).read_bytes() == p for n, p in found.items() if n != "1.tar.gz")
    assert archive.read_metadata_or_none(checkpoints / "1.tar.gz") is not None  # retrained, replaced whole


def test_several_hosts_without_a_job_name_or_run_id_fail_clearly(sm_root: Path, monkeypatch):
    monkeypatch.delenv("TRAINING_JOB_NAME", raising=False)
    (sm_root / "input" / "config" / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]})
    )
    write_folder_layout(channel(sm_root), range(2))
    write_hyperparameters(sm_root)
    assert main(["train"]) == 1
    assert "no run id: set the run_id hyperparameter" in (sm_root / "output" / "failure").read_text()
    write_hyperparameters(sm_root, run_id="bad/run")
    assert main(["train"]) == 1
    assert "hyperparameter run_id='bad/run'" in (sm_root / "output" / "failure").read_text()
