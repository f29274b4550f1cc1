"""`fleetcast local-train`: a sharded multi-instance SageMaker training job, played on one machine.

For each host algo-1..algo-N it lays out an /opt/ml-shaped root with the config files SageMaker writes
for a job with a CheckpointConfig, the host's share of the channel and a copy of the checkpoint prefix
(SageMaker copies it to every instance at start, which is what makes resume work). The share is the host's
ShardedByS3Key objects (see sharding.py), or with FullyReplicated every object, in which case each `train`
picks its own customers by hash. It then runs the N `fleetcast train` processes concurrently, exactly as
the image would, and collects their new checkpoints into `--models`, our stand-in for the checkpoint S3
prefix. The host roots and the merged report stay in a work dir beside `--models`
(`<models>-local-train/`, see default_work_dir), reused by the next run.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from fleetcast.local.sharding import assign_round_robin
from fleetcast.model import archive
from fleetcast.paths import BASE_DIR_ENV, DEFAULT_CHECKPOINT_LOCAL_PATH, SageMakerPaths
from fleetcast.training.config import (
    FULLY_REPLICATED,
    SHARDED_BY_S3_KEY,
    ConfigError,
    cpu_count,
    parse_hyperparameters,
)
from fleetcast.training.peers import PEER_PORT_ENV

log = logging.getLogger("fleetcast.local_train")


def parse_key_values(pairs: list[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"hyperparameter {pair!r} is not KEY=VALUE")
        result[key.strip()] = value
    return result


def list_objects(data: Path) -> list[str]:
    """The channel's files as S3-style keys relative to the prefix (hidden files are not objects)."""
    return sorted(
        path.relative_to(data).as_posix()
        for path in data.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(data).parts)
    )


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def lay_out_host(
    root: Path, host: str, hosts: list[str], channel: str, data: Path, keys: list[str],
    hyperparameters: dict[str, str], models: Path, distribution: str = SHARDED_BY_S3_KEY,
) -> SageMakerPaths:  # fmt: skip
    paths = SageMakerPaths(root)
    if root.exists():
        shutil.rmtree(root)
    paths.input_config_dir.mkdir(parents=True)
    paths.hyperparameters_file.write_text(json.dumps(hyperparameters, indent=1))
    paths.resource_config_file.write_text(
        json.dumps({"current_host": host, "hosts": hosts, "network_interface_name": "eth0"})
    )
    paths.input_data_config_file.write_text(
        json.dumps(
            {
                channel: {
                    "ContentType": "text/csv",
                    "TrainingInputMode": "File",
                    "S3DistributionType": distribution,
                    "RecordWrapperType": "None",
                }
            }
        )
    )
    # The checkpoint folder is synced (here: collected into --models), as with a CheckpointConfig.
    paths.checkpoint_config_file.write_text(json.dumps({"LocalPath": DEFAULT_CHECKPOINT_LOCAL_PATH}))
    for key in keys:
        _link_or_copy(data / key, paths.channel_dir(channel) / key)
    paths.checkpoints_dir.mkdir(parents=True)
    for existing in models.glob(f"*{archive.ARCHIVE_SUFFIX}"):
        if archive.customer_of(existing) is not None:
            _link_or_copy(existing, paths.checkpoints_dir / existing.name)
    return paths


def _stream(prefix: str, pipe) -> None:
    for line in pipe:
        sys.stdout.write(f"[{prefix}] {line}")
        sys.stdout.flush()


def run_hosts(roots: dict[str, SageMakerPaths]) -> dict[str, int]:
    """Run one `fleetcast train` per host concurrently; a Ctrl-C or SIGTERM is passed on to all of them."""
    processes: dict[str, subprocess.Popen] = {}
    for host, paths in roots.items():
        # The hosts share this machine (one port) and cannot resolve each other; this waits for them all.
        env = {**os.environ, BASE_DIR_ENV: str(paths.base), PEER_PORT_ENV: "0", "PYTHONUNBUFFERED": "1"}
        processes[host] = subprocess.Popen(
            [sys.executable, "-m", "fleetcast.cli", "train"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    streams = [
        threading.Thread(target=_stream, args=(h, p.stdout), daemon=True) for h, p in processes.items()
    ]
    for thread in streams:
        thread.start()

    def forward(signum: int, _frame: object) -> None:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = {host: process.wait() for host, process in processes.items()}
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for thread in streams:
        thread.join(timeout=5)
    return codes


def collect_checkpoints(roots: dict[str, SageMakerPaths], models: Path) -> int:
    """Copy archives a host wrote (not the copies it was given) into the models prefix, atomically."""
    copied = 0
    models.mkdir(parents=True, exist_ok=True)
    for paths in roots.values():
        for archive_path in sorted(paths.checkpoints_dir.glob(f"*{archive.ARCHIVE_SUFFIX}")):
            if archive.customer_of(archive_path) is None:
                continue
            target = models / archive_path.name
            if target.exists() and os.path.samefile(archive_path, target):
                continue
            fd, tmp = tempfile.mkstemp(prefix=archive.TEMP_PREFIX, suffix=archive.ARCHIVE_SUFFIX, dir=models)
            os.close(fd)
            shutil.copyfile(archive_path, tmp)
            os.replace(tmp, target)
            copied += 1
    return copied


WORK_DIR_SUFFIX = "-local-train"
REPORT_NAME = "report.csv"


def default_work_dir(models: Path) -> Path:
    """Beside the models folder, so a run's inputs and report are found next to its output (and reused)."""
    models = models.resolve()
    return models.with_name(models.name + WORK_DIR_SUFFIX)


def merge_reports(roots: dict[str, SageMakerPaths], out: Path) -> list[dict[str, str]]:
    """One CSV of every host's report rows (with a host column), replacing a previous run's report."""
    out.unlink(missing_ok=True)
    rows: list[dict[str, str]] = []
    for host, paths in roots.items():
        report = paths.output_data_dir / f"report-{host}.csv"
        if report.exists():
            with open(report, newline="") as handle:
                for row in csv.DictReader(handle):
                    rows.append({"host": host, **row})
    if rows:
        with open(out, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return rows


def accuracy_line(rows: list[dict[str, str]]) -> str:
    """Median holdout sMAPE against the seasonal-naive baseline, over customers that were scored."""
    scored = [(float(r["smape"]), float(r["naive_smape"])) for r in rows if r.get("smape")]
    if not scored:
        return "no holdout scores (holdout_days=0?)"
    model = statistics.median(s for s, _ in scored)
    naive = statistics.median(n for _, n in scored)
    better = sum(s < n for s, n in scored)
    return (
        f"holdout: median sMAPE {model:.2f}% vs seasonal-naive {naive:.2f}%; "
        f"Prophet beats naive for {better}/{len(scored)} customers"
    )


def local_train_main(
    data: Path, hosts: int, models: Path, work_dir: Path | None, hyperparameters: list[str],
    distribution: str = SHARDED_BY_S3_KEY,
) -> int:  # fmt: skip
    try:
        values = parse_key_values(hyperparameters)
        config = parse_hyperparameters(values)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    keys = list_objects(data) if data.is_dir() else []
    if not keys:
        log.error("no input files under %s (run `fleetcast split` first)", data)
        return 2
    if distribution not in (SHARDED_BY_S3_KEY, FULLY_REPLICATED):
        log.error("distribution must be %s or %s", SHARDED_BY_S3_KEY, FULLY_REPLICATED)
        return 2
    sharded = distribution == SHARDED_BY_S3_KEY
    if hosts < 1 or (sharded and hosts > len(keys)):
        # SageMaker refuses more ShardedByS3Key instances than objects.
        log.error("--hosts must be between 1 and the number of input objects (%d)", len(keys))
        return 2
    if "workers" not in values:
        # N emulated instances share this machine's cores instead of each taking all of them.
        values["workers"] = str(max(1, cpu_count() // hosts))

    work_dir = work_dir or default_work_dir(models)
    shards = assign_round_robin(keys, hosts)
    if not sharded:
        shards = {host: list(keys) for host in shards}
    names = list(shards)
    roots = {
        host: lay_out_host(
            work_dir / host, host, names, config.job.channel, data, shard, values, models, distribution
        )
        for host, shard in shards.items()
    }  # fmt: skip
    log.info(
        "local training: %d objects over %d hosts, %s (%s), work dir %s",
        len(keys), hosts, distribution, ", ".join(f"{h}: {len(s)}" for h, s in shards.items()), work_dir,
    )  # fmt: skip

    began = time.perf_counter()
    codes = run_hosts(roots)
    elapsed = time.perf_counter() - began
    copied = collect_checkpoints(roots, models)
    report = work_dir / REPORT_NAME
    rows = merge_reports(roots, report)
    counts = Counter(row["status"] for row in rows)
    trained = counts.get("trained", 0)
    log.info(
        "local training done in %.1fs: %s; %.1f models/s overall; %d new checkpoints in %s",
        elapsed,
        ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing trained",
        trained / elapsed if elapsed else 0.0,
        copied,
        models,
    )
    log.info(accuracy_line(rows))
    log.info("report: %s", report if rows else "none (no host wrote one)")
    failed_hosts = {host: code for host, code in codes.items() if code != 0}
    for host, code in failed_hosts.items():
        failure = roots[host].failure_file
        reason = failure.read_text().strip() if failure.exists() else "no failure file"
        log.error("host %s exited %d: %s", host, code, reason)
    return 1 if failed_hosts else 0
