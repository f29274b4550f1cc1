"""`train`: the entry point SageMaker runs (`docker run IMAGE train`).

Reads the training contract under /opt/ml (or $SAGEMAKER_BASE_DIR), fits every customer of this host's
shard that the previous fleet manifest has no current version of, writes `<checkpoints>/<customer>.tar.gz`
(the checkpoint folder is this run's folder below the models prefix, see resume.py), this host's manifest
`<checkpoints>/manifest-<host>.csv.gz`, a per-customer report and a fleet summary.

Where the models end up (logged at start): the checkpoint folder is synced to S3 only when the job has a
CheckpointConfig (see config.CheckpointConfig for how the container knows). Without one, that folder dies
with the instance, so the archives are also packed into /opt/ml/model, which SageMaker tars into the job's
model.tar.gz: extracted, it holds `<customer>.tar.gz` at the top, the layout a multi-model endpoint's S3
prefix (and MultiDataModel) expects. When several hosts receive the same full channel, each trains only
the customers whose id hashes to it (config.host_of_customer), and waits for the others at the end
(peers.py).

The job fails (non-zero exit, reason in output/failure, which SageMaker shows as FailureReason) only for
no input, invalid configuration, a stop request, or more failed customers than `max_failure_rate` allows.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import shutil
import signal
import statistics
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from fleetcast.data.customer_ids import safe_customer_id
from fleetcast.data.layout import CUSTOMER_COLUMN
from fleetcast.model import archive
from fleetcast.paths import SHARDED_BY_S3_KEY, SageMakerPaths, sagemaker_paths
from fleetcast.training import memory
from fleetcast.training.config import (
    CheckpointConfig,
    ConfigError,
    ResourceConfig,
    TrainingConfig,
    cpu_count,
    read_checkpoint_config,
    read_hyperparameters,
    read_input_data_config,
    read_resource_config,
)
from fleetcast.training.customer import FAILED, CustomerResult, FitContext
from fleetcast.training.deaths import DeathJournal
from fleetcast.training.fleet import FleetProgress, StopFlag, run_fleet
from fleetcast.training.inputs import (
    ChannelInventory,
    CustomerTask,
    NoInputError,
    bucket_customer_count,
    customer_of_file,
    iter_bucket_tasks,
    scan_channel,
)
from fleetcast.training.peers import PeerBarrier
from fleetcast.training.resume import HostManifest, load_previous, resolve_run_id

log = logging.getLogger("fleetcast.train")
FAILURE_REASON_LIMIT = 1024
EXIT_FAILED, EXIT_STOPPED = 1, 143
# Per host, so hosts never overwrite each other's files in the job's output.
HOST_REPORT_PREFIX, HOST_SUMMARY_PREFIX = "report-", "fleet-summary-"
REPORT_FIELDS = [
    "customer", "status", "target_model", "model", "cv_smape", "runner_up", "fit_engine", "fits", "rows",
    "dropped_rows", "seconds", "fit_seconds", "mae", "smape", "naive_mae", "naive_smape", "reason",
]  # fmt: skip


def host_report_name(host: str) -> str:
    return f"{HOST_REPORT_PREFIX}{host}.csv"


def host_summary_name(host: str) -> str:
    return f"{HOST_SUMMARY_PREFIX}{host}.json"


def host_html_report_name(host: str) -> str:
    return f"fleet-report-{host}.html"


def write_html_report(paths: SageMakerPaths, host: str) -> None:
    """This host's fleet report page, beside its CSV report in output/data (so it lands in
    output.tar.gz). A page that cannot be drawn is logged; it never fails the job."""
    from fleetcast.report.build import write_report

    try:
        write_report(
            paths.output_data_dir,
            paths.output_data_dir / host_html_report_name(host),
            models=paths.checkpoints_dir,
            worst_trained_only=True,  # a kept customer's archive is in its own run's folder, not here
        )
    except Exception:
        log.warning("could not write the HTML fleet report; the CSV report has every number", exc_info=True)


def library_versions() -> dict[str, str]:
    versions = {}
    for name in ("fleetcast", "prophet", "pandas", "numpy", "cmdstanpy"):
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def write_failure(paths: SageMakerPaths, reason: str) -> None:
    log.error("training failed: %s", reason)
    paths.output_dir.mkdir(parents=True, exist_ok=True)
    paths.failure_file.write_text(reason[:FAILURE_REASON_LIMIT])


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    archive.write_atomically(path, text.encode(), temp_suffix=path.suffix)


def iter_tasks(
    inventory: ChannelInventory,
    refused: list[CustomerResult],
    max_rows: int = 0,
    journal: DeathJournal | None = None,
    owns: Callable[[str], bool] | None = None,
    regressors: tuple[str, ...] = (),
) -> Iterator[CustomerTask]:
    """Every customer this host `owns` (default: all) once, capped at `max_rows`, with the `regressors`
    columns to read. A second source for the same id, and a customer whose worker died in an earlier
    attempt (`journal`), are recorded as failures, never trained. Another host's customer is left to that
    host, duplicates included."""
    seen: dict[str, str] = {}

    def first_time(customer: str, source: str) -> bool:
        if owns is not None and not owns(customer):
            return False
        earlier = journal.earlier_reason(customer) if journal else None
        if earlier and customer not in seen:
            seen[customer] = source
            refused.append(CustomerResult(customer, FAILED, reason=earlier))
            return False
        if customer in seen:
            refused.append(
                CustomerResult(
                    customer, FAILED, reason=f"duplicate customer id in {source} (also in {seen[customer]})"
                )
            )
            return False
        seen[customer] = source
        return True

    for path in inventory.files:
        customer = customer_of_file(path)
        if first_time(customer, str(path)):
            yield CustomerTask(customer=customer, path=path, max_rows=max_rows, regressors=regressors)
    for bucket in inventory.buckets:
        for task in iter_bucket_tasks(bucket, regressors):
            if first_time(task.customer, str(bucket)):
                yield dataclasses.replace(task, max_rows=max_rows)


class ReportWriter:
    """The per-customer report, one row per result as it arrives, renamed into place when complete."""

    def __init__(self, paths: SageMakerPaths, host: str) -> None:
        self.path = paths.output_data_dir / host_report_name(host)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp")
        self._handle = open(self._tmp, "w", newline="")  # noqa: SIM115 - closed in close()
        self._writer = csv.DictWriter(self._handle, fieldnames=REPORT_FIELDS, extrasaction="ignore")
        self._writer.writeheader()

    def write(self, result: CustomerResult) -> None:
        metrics = result.metrics or {}
        self._writer.writerow(
            {
                **{k: metrics.get(k, "") for k in ("mae", "smape", "naive_mae", "naive_smape")},
                "customer": result.customer,
                "status": result.status,
                "target_model": result.entry.target_model if result.entry else "",
                "model": result.model,
                "cv_smape": "" if result.cv_smape is None else result.cv_smape,
                "runner_up": result.runner_up,
                "fit_engine": result.fit_engine,
                "fits": result.fits or "",
                "rows": result.rows,
                "dropped_rows": result.dropped_rows,
                "seconds": f"{result.seconds:.4f}",
                "fit_seconds": f"{result.fit_seconds:.4f}",
                "reason": result.reason,
            }
        )

    def close(self) -> Path:
        self._handle.close()
        os.replace(self._tmp, self.path)
        return self.path


def fleet_summary(
    progress: FleetProgress,
    config: TrainingConfig,
    run: str,
    host: str,
    hosts: list[str],
    workers: int,
    interrupted: bool,
    max_rows: int,
) -> dict[str, Any]:
    fit, busy = progress.fit_seconds, progress.busy_seconds
    return {
        "run": run,
        "host": host,
        "hosts": hosts,
        "workers": workers,
        "customers": progress.total,
        "counts": progress.counts,
        "interrupted": interrupted,
        "elapsed_seconds": round(progress.elapsed, 3),
        "models_per_second": round(progress.models_per_second, 3),
        "fit_seconds": round(fit, 3),
        # Trained customers by the engine that fitted them.
        "fit_engines": dict(sorted(progress.engines.items())),
        # Time spent per trained customer on everything but Prophet.fit, relative to fit time.
        "overhead_fraction": round((busy - fit) / fit, 4) if fit else None,
        "median_smape": statistics.median(progress.smapes) if progress.smapes else None,
        "median_naive_smape": statistics.median(progress.naive_smapes) if progress.naive_smapes else None,
        # Customers whose shipped model beat seasonal-naive on the holdout, of those scored.
        "beats_naive_share": progress.beats_naive_share,
        "median_cv_smape": statistics.median(progress.cv_smapes) if progress.cv_smapes else None,
        # Trained customers by the candidate chosen for them, and the fits it took.
        "models": dict(sorted(progress.models.items())),
        "fits_per_customer": progress.fits_per_customer,
        "config_fingerprint": config.fingerprint(),
        "prophet": config.prophet.prophet_kwargs(),
        "job": config.job.__dict__,
        "max_rows_per_customer": max_rows,
        "versions": library_versions(),
        # The first LISTED_FAILURES failures; the report has every one.
        "failed": progress.failures,
    }


def row_cap(configured: int, workers: int) -> tuple[int, str]:
    """`max_rows_per_customer`, and where it came from (for the log)."""
    if configured:
        return configured, "max_rows_per_customer"
    available = memory.available_memory()
    if available is None:
        return 0, "no cap: the instance's memory is unknown"
    return memory.rows_cap(available, workers), (
        f"sized from {available / 2**30:.1f} GiB available, {workers} workers, "
        f"{memory.BYTES_PER_ROW} bytes per row"
    )


def _mount_of(path: Path) -> str:
    """The mount point holding `path`: the longest one in /proc/self/mountinfo that is a prefix."""
    resolved = os.path.realpath(path)
    best = "/"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return best
    for line in lines:
        point = line.split()[4].replace("\\040", " ")
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best = point
    return best


def staging_dir(paths: SageMakerPaths) -> Path:
    """Where archives are staged: outside the synced checkpoints, but where a rename into them works."""
    staging = paths.archive_staging_dir
    staging.mkdir(parents=True, exist_ok=True)
    same_device = os.stat(staging).st_dev == os.stat(paths.checkpoints_dir).st_dev
    if same_device and _mount_of(staging) == _mount_of(paths.checkpoints_dir):
        return staging
    log.warning(
        "%s is not on the mount of %s, so archives cannot be renamed in from there: staging them inside "
        "the checkpoints folder instead, where a temporary file may be synced to S3",
        staging,
        paths.checkpoints_dir,
    )
    return paths.checkpoints_dir


# Past these, one model.tar.gz is the wrong vehicle: it must be downloaded and unpacked whole before any
# model can be served, and a multi-model endpoint wants one S3 object per customer anyway.
MODEL_TARBALL_MAX_CUSTOMERS = 2000
MODEL_TARBALL_MAX_BYTES = 1 << 30
CHECKPOINT_ADVICE = (
    "configure a CheckpointConfig instead (SDK: Estimator(checkpoint_s3_uri='s3://bucket/models/', ...)): "
    "every <customer>.tar.gz then lands under that prefix as it is trained, ready for a multi-model "
    "endpoint, and a restarted job resumes from it"
)


@dataclass(frozen=True)
class ModelDelivery:
    """Where this job's archives end up: the synced checkpoint folder, model.tar.gz, or both."""

    synced_checkpoints: bool
    pack_into_model: bool

    @classmethod
    def decide(cls, setting: str, checkpoints: CheckpointConfig, paths: SageMakerPaths) -> ModelDelivery:
        synced = checkpoints.covers(paths.checkpoints_dir)
        if checkpoints.configured and not synced:
            log.warning(
                "the job's CheckpointConfig.LocalPath is %s, but archives are written to %s: they are not "
                "synced to the checkpoint S3 prefix (use the default LocalPath)",
                checkpoints.local_path,
                paths.checkpoints_dir,
            )
        pack = {"auto": not synced, "checkpoints": False, "both": True}[setting]
        return cls(synced_checkpoints=synced, pack_into_model=pack)

    def describe(self, paths: SageMakerPaths) -> str:
        places = []
        if self.synced_checkpoints:
            places.append(f"the checkpoint S3 prefix (CheckpointConfig, synced from {paths.checkpoints_dir})")
        if self.pack_into_model:
            places.append(
                f"the job's model.tar.gz (packed into {paths.model_dir}; extracted, it holds "
                "<customer>.tar.gz at the top, ready to upload as a multi-model endpoint's prefix)"
            )
        if not places:
            return (
                "NOWHERE that outlives this job: model_output=checkpoints, but the job has no "
                f"CheckpointConfig ({paths.checkpoint_config_file} is absent), so {paths.checkpoints_dir} "
                "is lost when the instance stops; set a CheckpointConfig or model_output=auto"
            )
        return " and ".join(places)


def pack_into_model_dir(names: list[str], paths: SageMakerPaths) -> tuple[int, int]:
    """Put each named file of the checkpoint folder (archives, the host manifest) in the model folder under
    its own name; (files, bytes), logged. Extracted into `<models>/<run>/`, model.tar.gz is the run's folder.

    A hard link where the two folders share a file system (no second copy on the instance's volume), a
    copy renamed into place otherwise. A customer without a readable archive is skipped: its report row
    already says why.
    """
    paths.model_dir.mkdir(parents=True, exist_ok=True)
    packed = size = 0
    for name in names:
        source = paths.checkpoints_dir / name
        target = paths.model_dir / source.name
        if not source.is_file():
            continue
        if not (target.exists() and os.path.samefile(source, target)):
            temp = paths.model_dir / f"{archive.TEMP_PREFIX}{source.name}"
            temp.unlink(missing_ok=True)
            try:
                os.link(source, temp)
            except OSError:
                shutil.copyfile(source, temp)
            os.replace(temp, target)
        packed += 1
        size += target.stat().st_size
    archives = sum(name.endswith(archive.ARCHIVE_SUFFIX) for name in names)
    log.info(
        "packed %d archives and %d other files (%.1f MB) into %s",
        archives,
        packed - archives,
        size / 1e6,
        paths.model_dir,
    )
    if size > MODEL_TARBALL_MAX_BYTES:
        log.warning(
            "%.1f GB of archives in one model.tar.gz is fleet scale (over %.1f GB): %s",
            size / 1e9,
            MODEL_TARBALL_MAX_BYTES / 1e9,
            CHECKPOINT_ADVICE,
        )
    return packed, size


def owned_customer_count(inventory: ChannelInventory, resources: ResourceConfig) -> int:
    """How many of the channel's customers this host owns (bucket ids read as iter_bucket_tasks does)."""
    count = sum(resources.owns(customer_of_file(path)) for path in inventory.files)
    if inventory.buckets:
        import pandas as pd

        for bucket in inventory.buckets:
            ids = pd.read_csv(bucket, usecols=[CUSTOMER_COLUMN], dtype=str)[CUSTOMER_COLUMN].dropna()
            count += sum(resources.owns(safe_customer_id(raw)) for raw in ids.unique())
    return count


@dataclass(frozen=True)
class JobPlan:
    owns: Callable[[str], bool] | None  # None: every customer in the channel is this host's
    total: int  # this host's customers
    delivery: ModelDelivery
    max_rows: int  # max_rows_per_customer, 0 for no cap


def plan_job(
    config: TrainingConfig,
    resources: ResourceConfig,
    channels: dict[str, dict[str, Any]],
    checkpoints: CheckpointConfig,
    inventory: ChannelInventory,
    workers: int,
    paths: SageMakerPaths,
) -> JobPlan:
    """This host's share of the channel, where its models will end up and its row cap, all logged."""
    in_channel = len(inventory.files) + sum(bucket_customer_count(b) for b in inventory.buckets)
    distribution = channels.get(config.job.channel, {}).get("S3DistributionType")
    log.info(
        "host %s (%d of %d), channel %r (%s): %d customers in %d files, %d workers",
        resources.current_host,
        resources.host_index + 1,
        len(resources.hosts),
        config.job.channel,
        distribution or "S3DistributionType unspecified",
        in_channel,
        len(inventory),
        workers,
    )
    owns = resources.owns if resources.shares_channel(distribution) else None
    total = owned_customer_count(inventory, resources) if owns else in_channel
    if owns:
        log.info(
            "every host received the whole channel, so each trains only the customers whose id hashes to it "
            "(sha256 over the sorted hosts %s): this host trains %d of the %d",
            ", ".join(resources.hosts),
            total,
            in_channel,
        )

    delivery = ModelDelivery.decide(config.job.model_output, checkpoints, paths)
    (log.info if delivery.synced_checkpoints or delivery.pack_into_model else log.warning)(
        "models will end up in %s", delivery.describe(paths)
    )
    if delivery.pack_into_model and total > MODEL_TARBALL_MAX_CUSTOMERS:
        log.warning(
            "%d customers is fleet scale for one model.tar.gz (over %d): %s",
            total,
            MODEL_TARBALL_MAX_CUSTOMERS,
            CHECKPOINT_ADVICE,
        )
    max_rows, cap_source = row_cap(config.job.max_rows_per_customer, workers)
    log.info("max_rows_per_customer=%d (%s)", max_rows, cap_source)
    return JobPlan(owns, total, delivery, max_rows)


def job_outcome(
    progress: FleetProgress, config: TrainingConfig, *, stopped: bool, total: int, paths: SageMakerPaths
) -> int:
    """The exit code, with the failure reason written when the job failed or was stopped."""
    if stopped:
        write_failure(
            paths,
            f"stopped by SIGTERM after {progress.processed} of {total} customers; "
            "checkpoints written so far are kept and a restarted job resumes from them",
        )
        return EXIT_STOPPED
    failed = progress.counts[FAILED]
    attempted = progress.processed
    if attempted and failed / attempted > config.job.max_failure_rate:
        examples = "; ".join(f"{c}: {reason}" for c, reason in list(progress.failures.items())[:5])
        write_failure(
            paths,
            f"{failed} of {attempted} customers failed ({failed / attempted:.1%} > max_failure_rate "
            f"{config.job.max_failure_rate:.1%}). First failures: {examples}",
        )
        return EXIT_FAILED
    return 0


def prepare_staging(paths: SageMakerPaths) -> Path:
    """The checkpoints folder, and a staging folder cleared of a killed job's temporary files."""
    paths.checkpoints_dir.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(paths)
    # Never in the checkpoints folder itself: SageMaker mirrors local deletes to S3.
    if staging != paths.checkpoints_dir:
        archive.remove_stale_temp_files(staging)
    return staging


def read_job(
    paths: SageMakerPaths,
) -> tuple[TrainingConfig, ResourceConfig, dict, CheckpointConfig, ChannelInventory]:
    """The job's configuration files and its channel; raises ConfigError or NoInputError."""
    config = read_hyperparameters(paths)
    resources = read_resource_config(paths)
    channels = read_input_data_config(paths)
    checkpoints = read_checkpoint_config(paths)
    distribution = channels.get(config.job.channel, {}).get("S3DistributionType")
    # SageMaker may leave a ShardedByS3Key shard empty (fewer objects than hosts): nothing to do there.
    sharded = len(resources.hosts) > 1 and distribution == SHARDED_BY_S3_KEY
    inventory = scan_channel(paths.channel_dir(config.job.channel), may_be_empty=sharded)
    return config, resources, channels, checkpoints, inventory


def write_host_outputs(
    paths: SageMakerPaths, summary: dict[str, Any], report: ReportWriter, host: str
) -> None:
    """The host's fleet summary (in model/ and output/data/), its closed CSV report and its HTML page."""
    for folder in (paths.model_dir, paths.output_data_dir):
        _atomic_write(folder / host_summary_name(host), json.dumps(summary, indent=1))
    log.info("report: %s", report.close())
    write_html_report(paths, host)


def host_customers(inventory: ChannelInventory, owns: Callable[[str], bool] | None) -> set[str]:
    """The ids of the customers this host trains (bucket ids read as iter_bucket_tasks reads them)."""
    ids = {customer_of_file(path) for path in inventory.files}
    if inventory.buckets:
        import pandas as pd

        for bucket in inventory.buckets:
            raw = pd.read_csv(bucket, usecols=[CUSTOMER_COLUMN], dtype=str)[CUSTOMER_COLUMN].dropna()
            ids.update(safe_customer_id(value) for value in raw.unique())
    return ids if owns is None else {customer for customer in ids if owns(customer)}


def run_training(paths: SageMakerPaths) -> int:
    try:
        config, resources, channels, checkpoints, inventory = read_job(paths)
        run = resolve_run_id(config, resources)
        workers = config.job.workers or cpu_count()
        plan = plan_job(config, resources, channels, checkpoints, inventory, workers, paths)
        previous = load_previous(paths, lambda: host_customers(inventory, plan.owns))
    except (ConfigError, NoInputError) as exc:
        write_failure(paths, str(exc))
        return EXIT_FAILED

    stop = StopFlag()

    def request_stop(signum: int, _frame: object) -> None:
        log.warning("received %s: finishing fits in flight, then stopping", signal.Signals(signum).name)
        stop.set()

    previous_handler = signal.signal(signal.SIGTERM, request_stop)
    staging = prepare_staging(paths)
    context = FitContext(
        config,
        paths.checkpoints_dir,
        resources.current_host,
        library_versions(),
        staging_dir=staging,
        run=run,
        previous=previous,
    )
    journal = DeathJournal(paths.checkpoints_dir, staging, resources.current_host, config.fingerprint())
    refused: list[CustomerResult] = []
    report = ReportWriter(paths, resources.current_host)
    host_manifest = HostManifest(resources.current_host, paths.archive_staging_dir)  # never synced
    in_this_run: list[str] = []  # archives this run wrote or kept in its checkpoint folder

    def on_result(result: CustomerResult) -> None:
        report.write(result)
        if result.status != FAILED and result.entry is not None:
            host_manifest.add(result.entry)
            if result.entry.run == run:
                in_this_run.append(archive.archive_name(result.customer))

    # Started before the fleet so that every peer can hear this host; see peers.py for why hosts wait.
    barrier = PeerBarrier(resources.current_host, resources.hosts)
    barrier.start()
    try:
        progress = run_fleet(
            iter_tasks(inventory, refused, plan.max_rows, journal, plan.owns, config.prophet.regressor_names),
            plan.total,
            context,
            workers,
            config.job.progress_seconds,
            stop,
            on_result=on_result,
            on_death=journal.record,
        )
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        if staging != paths.checkpoints_dir:
            archive.remove_stale_temp_files(staging)
    for duplicate in refused:
        progress.add(duplicate)
        report.write(duplicate)
    log.info(progress.final_line())
    # Also after a stop, so that a restart, or a merge of what was done, finds it.
    host_manifest.write(paths.checkpoints_dir, staging)
    if plan.delivery.pack_into_model:
        # Also after a stop: SageMaker still uploads the model folder of a stopped job.
        pack_into_model_dir([*in_this_run, host_manifest.name], paths)

    summary = fleet_summary(
        progress, config, run, resources.current_host, resources.hosts, workers, stop.is_set(), plan.max_rows
    )
    write_host_outputs(paths, summary, report, resources.current_host)

    try:
        outcome = job_outcome(progress, config, stopped=stop.is_set(), total=plan.total, paths=paths)
        barrier.finish_and_wait()
    finally:
        barrier.close()
    return outcome


def train_main() -> int:
    paths = sagemaker_paths()
    paths.failure_file.unlink(missing_ok=True)
    try:
        return run_training(paths)
    except Exception as exc:
        log.exception("unexpected error")
        write_failure(
            paths, f"unexpected error: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
        )
        return EXIT_FAILED
