"""The fleet loop against real worker processes: killed workers, stop requests, staging, the row cap.

The fitting function is wrapped test-side (fork carries the wrapper into the workers) only to make a fit
slow or observable; the fits themselves are real, and so are the signals.
"""

from __future__ import annotations

import contextlib
import csv
import faulthandler
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from fleetcast.cli import main
from fleetcast.model import archive, manifest
from fleetcast.training import customer
from fleetcast.training.deaths import journal_name
from fleetcast.training.fleet import CHUNK_SIZE
from tests.helpers import write_folder_layout, write_hyperparameters

real_train_customer = customer.train_customer


def channel(root: Path) -> Path:
    return root / "input" / "data" / "train"


def report(root: Path) -> dict[str, dict[str, str]]:
    with open(root / "output" / "data" / "report-algo-1.csv", newline="") as handle:
        return {row["customer"]: row for row in csv.DictReader(handle)}


def archives(root: Path) -> set[str]:
    """What the checkpoint folder holds besides the host manifest every job writes."""
    return {p.name for p in (root / "checkpoints").iterdir() if not manifest.is_host_manifest(p.name)}


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.mark.parametrize(("how", "reason"), [("sigkill", "signal 9"), ("abort", "signal 6")])
def test_a_dead_worker_fails_exactly_its_customer_and_the_job_goes_on(
    sm_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, reason: str
):
    customers = range(3 * CHUNK_SIZE)
    victim = str(CHUNK_SIZE + 1)  # mid-chunk: its chunk mates were not started and must still be trained
    write_folder_layout(channel(sm_root), customers)
    write_hyperparameters(
        sm_root, workers="2", holdout_days="0", uncertainty_samples="0", max_failure_rate="0.5"
    )
    pid_file = tmp_path / "victim.pid"

    def wrapper(task, context):
        if task.customer == victim:
            pid_file.write_text(str(os.getpid()))
            if how == "abort":
                faulthandler.disable()  # pytest's, inherited: a crash here is the point, not news
                os.abort()
            time.sleep(60)  # until the test kills this worker
        return real_train_customer(task, context)

    monkeypatch.setattr(customer, "train_customer", wrapper)

    def killer():
        wait_for(lambda: pid_file.exists() and pid_file.read_text())
        os.kill(int(pid_file.read_text()), signal.SIGKILL)

    thread = threading.Thread(target=killer, daemon=True)
    if how == "sigkill":
        thread.start()
    assert main(["train"]) == 0

    rows = report(sm_root)
    assert len(rows) == len(customers)
    assert rows[victim]["status"] == "failed"
    assert rows[victim]["reason"] == f"worker died ({reason})"
    assert all(r["status"] == "trained" for c, r in rows.items() if c != victim)
    trained = {archive.archive_name(str(c)) for c in customers if str(c) != victim}
    assert archives(sm_root) == trained | {journal_name("algo-1")}
    summary = json.loads((sm_root / "model" / "fleet-summary-algo-1.json").read_text())
    assert summary["counts"] == {"trained": len(customers) - 1, "skipped": 0, "failed": 1}
    assert summary["failed"] == {victim: f"worker died ({reason})"}

    # a resumed job sees the death recorded with the checkpoints, and does not meet the customer again
    monkeypatch.setattr(customer, "train_customer", real_train_customer)
    assert main(["train"]) == 0
    rows = report(sm_root)
    assert rows[victim]["status"] == "failed"
    assert rows[victim]["reason"].startswith(f"worker died ({reason}) in an earlier attempt of this job")
    assert all(r["status"] == "skipped" for c, r in rows.items() if c != victim)


def test_sigterm_starts_no_new_fit(sm_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    write_folder_layout(channel(sm_root), range(30))
    write_hyperparameters(sm_root, workers="2", holdout_days="0", uncertainty_samples="0")
    starts = tmp_path / "starts.log"
    slow = 0.6  # seconds each fit takes at least, so the moment of the signal is far from any start

    def wrapper(task, context):
        with open(starts, "a") as handle:
            handle.write(f"{os.getpid()} {task.customer} {time.monotonic()}\n")
        time.sleep(slow)
        return real_train_customer(task, context)

    monkeypatch.setattr(customer, "train_customer", wrapper)

    def started() -> list[list[str]]:
        return [line.split() for line in starts.read_text().splitlines()] if starts.exists() else []

    at_signal: list[list[str]] = []

    def stopper():
        def both_mid_fit() -> bool:
            latest = {pid: float(t) for pid, _c, t in started()}
            now = time.monotonic()
            # both workers at least 0.2 s away from the end of their fit, so none starts while we signal
            return (
                len(started()) >= 3
                and len(latest) == 2
                and all(now - t < slow - 0.2 for t in latest.values())
            )

        wait_for(both_mid_fit)
        at_signal.extend(started())
        signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)

    threading.Thread(target=stopper, daemon=True).start()
    assert main(["train"]) == 143

    in_flight = {c for _pid, c, _t in at_signal}
    assert {c for _pid, c, _t in started()} == in_flight  # nothing started after the signal
    assert 3 <= len(in_flight) < 30
    rows = report(sm_root)
    assert set(rows) == in_flight and {r["status"] for r in rows.values()} == {"trained"}
    assert archives(sm_root) == {archive.archive_name(c) for c in in_flight}  # in-flight fits were written
    assert "stopped by SIGTERM" in (sm_root / "output" / "failure").read_text()


def test_no_temporary_file_ever_appears_in_the_checkpoints_folder(sm_root: Path):
    customers = range(100)
    write_folder_layout(channel(sm_root), customers)
    write_hyperparameters(sm_root, workers="2", holdout_days="0", uncertainty_samples="0")
    checkpoints = sm_root / "checkpoints"
    finals = {archive.archive_name(str(c)) for c in customers}
    seen: set[str] = set()
    passes = 0
    done = threading.Event()

    def watch():
        nonlocal passes
        while not done.is_set():
            with contextlib.suppress(FileNotFoundError):  # until the job creates it
                seen.update(os.listdir(checkpoints))
            passes += 1

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        assert main(["train"]) == 0
    finally:
        done.set()
        watcher.join()
    assert passes > 1000
    assert seen - finals == {manifest.host_manifest_name("algo-1")}
    assert archives(sm_root) == finals
    staging = sm_root / "checkpoints-staging"
    assert staging.is_dir() and not list(staging.iterdir())


def test_max_rows_per_customer_fails_only_the_big_customer(sm_root: Path):
    write_folder_layout(channel(sm_root), range(3))
    big = channel(sm_root) / "big"
    big.mkdir()
    stamps = pd.date_range("2021-01-01", periods=400, freq="D")
    pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d"), "consumption": range(400)}).to_csv(
        big / "data.csv", index=False
    )
    write_hyperparameters(
        sm_root, workers="2", holdout_days="0", uncertainty_samples="0", max_failure_rate="0.5",
        max_rows_per_customer="200",
    )  # fmt: skip
    assert main(["train"]) == 0
    rows = report(sm_root)
    assert rows["big"]["status"] == "failed"
    assert "more than 200 rows, over max_rows_per_customer=200" in rows["big"]["reason"]
    assert {rows[str(c)]["status"] for c in range(3)} == {"trained"}
    assert not (sm_root / "checkpoints" / "big.tar.gz").exists()


def test_the_row_cap_is_sized_from_memory_and_logged(sm_root: Path, caplog: pytest.LogCaptureFixture):
    write_folder_layout(channel(sm_root), range(1))
    write_hyperparameters(sm_root, workers="2", holdout_days="0", uncertainty_samples="0")
    with caplog.at_level(logging.INFO, logger="fleetcast.train"):
        assert main(["train"]) == 0
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("max_rows_per_customer="))
    cap = int(line.split("=")[1].split()[0])
    assert "GiB available, 2 workers, 4096 bytes per row" in line
    summary = json.loads((sm_root / "model" / "fleet-summary-algo-1.json").read_text())
    assert summary["max_rows_per_customer"] == cap > 10_000


def test_workers_exit_when_the_parent_is_killed(sm_root: Path):
    import subprocess
    import sys

    write_folder_layout(channel(sm_root), range(200))
    write_hyperparameters(sm_root, workers="2", holdout_days="0", uncertainty_samples="0", fit_engine="stan")
    parent = subprocess.Popen(
        [sys.executable, "-m", "fleetcast.cli", "train"],
        env={**os.environ, "SAGEMAKER_BASE_DIR": str(sm_root)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children_file = Path(f"/proc/{parent.pid}/task/{parent.pid}/children")
    workers: list[int] = []
    try:
        wait_for(lambda: len(children_file.read_text().split()) >= 2 and (sm_root / "checkpoints").is_dir())
        workers = [int(pid) for pid in children_file.read_text().split()]
        parent.kill()
        parent.wait()

        def gone(pid: int) -> bool:
            try:
                return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
            except FileNotFoundError:
                return True

        wait_for(lambda: all(gone(pid) for pid in workers), timeout=20)
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_each_worker_fits_with_one_blas_thread(
    sm_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # The parent's pool has one thread per core; a worker's must have one (see fleetcast/blas.py).
    from threadpoolctl import threadpool_info

    seen = tmp_path / "threads"
    seen.mkdir()

    def wrapper(task, context):
        pools = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
        (seen / task.customer).write_text(json.dumps(pools))
        return real_train_customer(task, context)

    monkeypatch.setattr(customer, "train_customer", wrapper)
    write_folder_layout(channel(sm_root), range(4))
    write_hyperparameters(sm_root, workers="2", holdout_days="0", uncertainty_samples="0")
    assert main(["train"]) == 0
    per_customer = {path.name: json.loads(path.read_text()) for path in seen.iterdir()}
    assert len(per_customer) == 4
    assert all(pools and set(pools) == {1} for pools in per_customer.values()), per_customer
