"""`fleetcast local-train`: a sharded multi-instance SageMaker training job, played on one machine.

`--models` plays the models prefix (model/manifest.py lays it out). Each run has a run id (`--run-id`,
default `local-<UTC time>`), which plays the job's name: SageMaker sets TRAINING_JOB_NAME on every host,
and so does this. The run's checkpoint prefix is `<models>/<run>/`.

For each host algo-1..algo-N it lays out an /opt/ml-shaped root with the config files SageMaker writes
for a job with a CheckpointConfig, the host's share of the channel, the previous fleet manifest
(`<models>/manifest.csv.gz`) as the `manifest` channel, and a copy of the run's checkpoint prefix
(SageMaker copies it to every instance at start: empty for a new run, the run's own archives when a run is
started again with the same `--run-id`, as a spot restart is). The share is the host's ShardedByS3Key
objects (see sharding.py), or with FullyReplicated every object, in which case each `train` picks its own
customers by hash. It then runs the N `fleetcast train` processes concurrently, exactly as the image would,
collects their checkpoint folders into `<models>/<run>/` and, when every host succeeded, publishes the run
(`fleetcast manifest merge`). The host roots and the merged report stay in a work dir beside `--models`
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
from datetime import UTC, datetime
from pathlib import Path

from fleetcast.local.sharding import assign_round_robin
from fleetcast.model import archive
from fleetcast.model.manifest import MANIFEST_NAME, ManifestError
from fleetcast.models_prefix import FolderPrefix, merge_run
from fleetcast.paths import (
    BASE_DIR_ENV,
    DEFAULT_CHECKPOINT_LOCAL_PATH,
    FULLY_REPLICATED,
    MANIFEST_CHANNEL,
    SHARDED_BY_S3_KEY,
    TRAINING_JOB_NAME_ENV,
    SageMakerPaths,
)
from fleetcast.training.config import (
    ConfigError,
    cpu_count,
    parse_hyperparameters,
    run_id,
)
from fleetcast.training.job import host_report_name
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


def _files(folder: Path) -> list[Path]:
    """The objects of a prefix played by a folder: its files, not hidden or temporary ones, not below."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def new_run_id(models: Path, now: datetime | None = None) -> str:
    """`local-<UTC time>`, with `-2`, `-3`, ... when a run of that second already has a folder."""
    stem = "local-" + (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    candidate, number = stem, 1
    while (models / candidate).exists():
        number += 1
        candidate = f"{stem}-{number}"
    return candidate


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def lay_out_host(
    root: Path, host: str, hosts: list[str], channel: str, data: Path, keys: list[str],
    hyperparameters: dict[str, str], models: Path, distribution: str = SHARDED_BY_S3_KEY, run: str = "",
) -> SageMakerPaths:  # fmt: skip
    paths = SageMakerPaths(root)
    if root.exists():
        shutil.rmtree(root)
    paths.input_config_dir.mkdir(parents=True)
    paths.hyperparameters_file.write_text(json.dumps(hyperparameters, indent=1))
    paths.resource_config_file.write_text(
        json.dumps({"current_host": host, "hosts": hosts, "network_interface_name": "eth0"})
    )
    channels = {
        channel: {
            "ContentType": "text/csv",
            "TrainingInputMode": "File",
            "S3DistributionType": distribution,
            "RecordWrapperType": "None",
        }
    }
    previous = models / MANIFEST_NAME
    if previous.is_file():  # every host gets the whole previous manifest, as launch sends it
        channels[MANIFEST_CHANNEL] = {**channels[channel], "S3DistributionType": FULLY_REPLICATED}
        _link_or_copy(previous, paths.manifest_channel_dir / MANIFEST_NAME)
    paths.input_data_config_file.write_text(json.dumps(channels))
    # The checkpoint folder is synced (here: collected into --models), as with a CheckpointConfig.
    paths.checkpoint_config_file.write_text(json.dumps({"LocalPath": DEFAULT_CHECKPOINT_LOCAL_PATH}))
    for key in keys:
        _link_or_copy(data / key, paths.channel_dir(channel) / key)
    paths.checkpoints_dir.mkdir(parents=True)
    # The checkpoint prefix is the run's folder: only this run's files are restored (none for a new run).
    for existing in _files(models / run) if run else []:
        _link_or_copy(existing, paths.checkpoints_dir / existing.name)
    return paths


def _stream(prefix: str, pipe) -> None:
    for line in pipe:
        sys.stdout.write(f"[{prefix}] {line}")
        sys.stdout.flush()


def run_hosts(roots: dict[str, SageMakerPaths], run: str) -> dict[str, int]:
    """Run one `fleetcast train` per host concurrently; a Ctrl-C or SIGTERM is passed on to all of them."""
    processes: dict[str, subprocess.Popen] = {}
    for host, paths in roots.items():
        # The hosts share this machine (one port) and cannot resolve each other; this waits for them all.
        env = {
            **os.environ,
            BASE_DIR_ENV: str(paths.base),
            PEER_PORT_ENV: "0",
            TRAINING_JOB_NAME_ENV: run,
            "PYTHONUNBUFFERED": "1",
        }
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


def collect_checkpoints(roots: dict[str, SageMakerPaths], run_folder: Path) -> int:
    """Sync each host's checkpoint folder into the run's folder, as SageMaker uploads it: every file a host
    wrote (not the copies it was given), each renamed into place whole. Returns how many were copied."""
    copied = 0
    run_folder.mkdir(parents=True, exist_ok=True)
    for paths in roots.values():
        for written in _files(paths.checkpoints_dir):
            target = run_folder / written.name
            if target.exists() and os.path.samefile(written, target):
                continue
            fd, tmp = tempfile.mkstemp(prefix=archive.TEMP_PREFIX, dir=run_folder)
            os.close(fd)
            shutil.copyfile(written, tmp)
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
        report = paths.output_data_dir / host_report_name(host)
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
        f"the shipped model beats naive for {better}/{len(scored)} customers"
    )


def publish(models: Path, run: str, failed_hosts: dict[str, int]) -> int:
    """Merge the run into the fleet manifest when every host succeeded; the exit code."""
    if failed_hosts:
        log.error(
            "run %s is not published: the fleet manifest still names the previous versions. Run again with "
            "--run-id %s to resume it, or publish what it trained with `fleetcast manifest merge --models "
            "%s --run %s`",
            run, run, models, run,
        )  # fmt: skip
        return 1
    try:
        merge_run(FolderPrefix(models), run)
    except ManifestError as exc:
        log.error("publishing run %s failed: %s", run, exc)
        return 1
    return 0


def local_train_main(
    data: Path, hosts: int, models: Path, work_dir: Path | None, hyperparameters: list[str],
    distribution: str = SHARDED_BY_S3_KEY, run: str | None = None,
) -> int:  # fmt: skip
    try:
        values = parse_key_values(hyperparameters)
        config = parse_hyperparameters(values)
        run = run_id(run) if run is not None else new_run_id(models)
    except (ConfigError, ValueError) as exc:
        log.error("%s", exc if isinstance(exc, ConfigError) else f"--run-id {run!r}: {exc}")
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
            work_dir / host, host, names, config.job.channel, data, shard, values, models, distribution, run
        )
        for host, shard in shards.items()
    }  # fmt: skip
    log.info(
        "local training run %s: %d objects over %d hosts, %s (%s), work dir %s",
        run, len(keys), hosts, distribution, ", ".join(f"{h}: {len(s)}" for h, s in shards.items()), work_dir,
    )  # fmt: skip

    began = time.perf_counter()
    codes = run_hosts(roots, run)
    elapsed = time.perf_counter() - began
    copied = collect_checkpoints(roots, models / run)
    report = work_dir / REPORT_NAME
    rows = merge_reports(roots, report)
    counts = Counter(row["status"] for row in rows)
    trained = counts.get("trained", 0)
    log.info(
        "local training done in %.1fs: %s; %.1f models/s overall; %d new files in %s",
        elapsed,
        ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing trained",
        trained / elapsed if elapsed else 0.0,
        copied,
        models / run,
    )
    log.info(accuracy_line(rows))
    log.info("report: %s", report if rows else "none (no host wrote one)")
    failed_hosts = {host: code for host, code in codes.items() if code != 0}
    for host, code in failed_hosts.items():
        failure = roots[host].failure_file
        reason = failure.read_text().strip() if failure.exists() else "no failure file"
        log.error("host %s exited %d: %s", host, code, reason)
    return publish(models, run, failed_hosts)
