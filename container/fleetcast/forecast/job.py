"""`fleetcast forecast`: every customer's forecast, as one dataset per instance (a SageMaker Processing job).

Archives are forecast in chunks by a pool of worker processes (one per CPU), each chunk compressed by its
worker into one gzip member of the dataset file (`dataset.py`). At most two chunks per worker are in
flight and nothing per customer is kept, so memory does not grow with the number of customers. The
dataset is written under a temporary name and renamed when complete: a reader never sees half of it.

Which customers: those the fleet manifest lists, else every archive under the folder (`sources.py`);
on several instances, each its share. A bad archive fails only its customer: it is listed with its
reason in `forecast-failures-<host>.csv`, and the counts, throughput and settings go to
`forecast-summary-<host>.json` (both in the reports folder). The job fails (exit 1, the reason in the
Processing ExitMessage) only when no customer could be forecast, and exits 2 for input to fix (no models
folder, no archive on a single instance, an unreadable manifest).
"""

from __future__ import annotations

import csv
import json
import logging
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from fleetcast.forecast import dataset
from fleetcast.forecast.predict import PROPHET, CustomerFailed, forecast_archive
from fleetcast.forecast.regressors import RegressorsError, check_source
from fleetcast.forecast.sources import Cluster, count_work, fleet_manifest_for, iter_work, processing_cluster
from fleetcast.model import archive
from fleetcast.model.manifest import ManifestError
from fleetcast.paths import SHARDED_BY_S3_KEY, SageMakerPaths, sagemaker_paths
from fleetcast.processing import ProcessingConfigError, write_exit_message

log = logging.getLogger("fleetcast.forecast")

EXIT_FAILED, EXIT_INPUT = 1, 2
CHUNK_CUSTOMERS = 256
IN_FLIGHT_PER_WORKER = 2
FAILURE_FIELDS = ("customer", "archive", "reason")
REASON_LIMIT = 300


@dataclass
class ChunkResult:
    payload: bytes  # one gzip member of CSV rows
    forecast: int = 0
    prophet_fallbacks: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (customer, archive, reason)


def forecast_chunk(work: list[tuple[str, str]], period: int, regressors: Path | None = None) -> ChunkResult:
    """Forecast each (customer, archive); the rows of those that work, compressed, and the reasons of those
    that fail. `regressors`: where models trained with regressors find their future values."""
    forecasts = []
    failures = []
    fallbacks = 0
    for customer, path in work:
        try:
            forecast = forecast_archive(Path(path), period, regressors)
        except CustomerFailed as exc:
            failures.append((customer, path, str(exc)[:REASON_LIMIT]))
            continue
        except Exception as exc:  # anything unforeseen is still this customer's alone
            failures.append((customer, path, f"{type(exc).__name__}: {exc}"[:REASON_LIMIT]))
            continue
        fallbacks += forecast.predictor == PROPHET
        forecasts.append(forecast)
    return ChunkResult(dataset.compressed_chunk(forecasts), len(forecasts), fallbacks, failures)


def _chunks(work: Iterator[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    while chunk := list(islice(work, size)):
        yield chunk


def _quiet_worker() -> None:
    from fleetcast.blas import one_blas_thread
    from fleetcast.logs import quiet_third_party

    quiet_third_party()
    one_blas_thread()


@dataclass
class Progress:
    total: int
    every_seconds: float
    started: float = field(default_factory=time.perf_counter)
    forecast: int = 0
    failed: int = 0
    prophet_fallbacks: int = 0
    _last_line: float = field(default_factory=time.perf_counter)

    @property
    def done(self) -> int:
        return self.forecast + self.failed

    @property
    def rate(self) -> float:
        return self.done / max(time.perf_counter() - self.started, 1e-9)

    def line(self) -> str:
        return (
            f"forecast {self.done}/{self.total} customers, {self.rate:.1f} customers/s, "
            f"{self.failed} failed, {self.prophet_fallbacks} by Prophet's predict"
        )

    def add(self, result: ChunkResult) -> None:
        self.forecast += result.forecast
        self.failed += len(result.failures)
        self.prophet_fallbacks += result.prophet_fallbacks
        now = time.perf_counter()
        if now - self._last_line >= self.every_seconds:
            log.info(self.line())
            self._last_line = now


def _results(
    chunks: Iterator[list[str]], period: int, workers: int, regressors: Path | None
) -> Iterator[ChunkResult]:
    """Each chunk's result as it completes; at most IN_FLIGHT_PER_WORKER chunks per worker at a time."""
    if workers == 1:
        for chunk in chunks:
            yield forecast_chunk(chunk, period, regressors)
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_quiet_worker) as pool:
        pending: set[Future[ChunkResult]] = set()
        for chunk in chunks:
            pending.add(pool.submit(forecast_chunk, chunk, period, regressors))
            if len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (future.result() for future in finished)
        for future in pending:
            yield future.result()


@dataclass(frozen=True)
class ForecastOutcome:
    dataset: Path
    failures: Path
    summary: dict


def run_forecast(
    models: Path,
    period: int,
    out: Path,
    reports: Path,
    *,
    cluster: Cluster,
    workers: int,
    progress_seconds: float = 5.0,
    chunk_customers: int = CHUNK_CUSTOMERS,
    regressors: Path | None = None,
) -> ForecastOutcome:
    """Forecast this instance's customers into `out/forecasts-<host>.csv.gz`; the report into `reports`."""
    host = cluster.host
    listed = fleet_manifest_for(models, cluster)
    total = count_work(models, cluster, listed)
    source = f"the fleet manifest {listed}" if listed else f"every archive under {models}"
    share = ""
    if len(cluster.hosts) > 1:
        dealt = "this instance's share"
        if cluster.models_sharded:
            dealt = f"SageMaker's share ({SHARDED_BY_S3_KEY})"
        share = f" ({dealt} of {len(cluster.hosts)} instances)"
    log.info(
        "forecasting %d customers%s from %s, %d steps each, %d workers -> %s",
        total, share, source, period, workers, out,
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    reports.mkdir(parents=True, exist_ok=True)
    target = out / dataset.dataset_file_name(host)
    failures_path = reports / f"forecast-failures-{host}.csv"
    temp_target = out / f"{archive.TEMP_PREFIX}{target.name}"
    temp_failures = reports / f"{archive.TEMP_PREFIX}{failures_path.name}"
    progress = Progress(total, progress_seconds)
    try:
        with open(temp_target, "wb") as data_file, open(temp_failures, "w", newline="") as failure_file:
            failure_writer = csv.writer(failure_file)
            failure_writer.writerow(FAILURE_FIELDS)
            data_file.write(dataset.header_member())
            chunks = _chunks(iter_work(models, cluster, listed), chunk_customers)
            for result in _results(chunks, period, workers, regressors):
                data_file.write(result.payload)
                failure_writer.writerows(result.failures)
                for customer, path, reason in result.failures[:3]:
                    log.warning("customer %s failed (%s): %s", customer, path, reason)
                progress.add(result)
        os.replace(temp_target, target)
        os.replace(temp_failures, failures_path)
    finally:
        temp_target.unlink(missing_ok=True)
        temp_failures.unlink(missing_ok=True)
    elapsed = time.perf_counter() - progress.started
    log.info(progress.line())
    summary = {
        "host": host,
        "models": str(models),
        "manifest": str(listed) if listed else None,
        "period": period,
        "regressors": str(regressors) if regressors else None,
        "archives": total,
        "forecast": progress.forecast,
        "failed": progress.failed,
        "prophet_fallbacks": progress.prophet_fallbacks,
        "workers": workers,
        "seconds": round(elapsed, 3),
        "customers_per_second": round(progress.done / max(elapsed, 1e-9), 1),
        "dataset": str(target),
        "failures": str(failures_path),
    }
    summary_path = reports / f"forecast-summary-{host}.json"
    archive.write_atomically(summary_path, json.dumps(summary, indent=1).encode(), temp_suffix=".json")
    return ForecastOutcome(target, failures_path, summary)


def _fail(paths: SageMakerPaths, message: str, code: int) -> int:
    log.error("forecast failed: %s", message)
    write_exit_message(paths, message)  # DescribeProcessingJob shows it as the job's ExitMessage
    return code


def forecast_main(
    *,
    models: Path | None,
    period: int,
    out: Path | None,
    reports: Path | None,
    workers: int,
    regressors: Path | None = None,
) -> int:
    paths = sagemaker_paths()
    models = models or paths.forecast_models_dir
    out = out or paths.forecast_output_dir
    reports = reports or paths.forecast_reports_dir
    problem = f"--period must be at least 1, got {period}" if period < 1 else None
    try:
        cluster = processing_cluster(paths, models)
    except ProcessingConfigError as exc:
        problem = problem or str(exc)
    # An instance of a sharded multi-instance job may be dealt no archive, and so no models folder.
    empty_share_allowed = problem is None and cluster.models_sharded and len(cluster.hosts) > 1
    if problem is None and not models.is_dir() and not empty_share_allowed:
        problem = f"no models folder at {models}"
    if problem is None and regressors is not None:
        try:
            check_source(regressors)  # one bad table for every customer would fail each driven one alike
        except RegressorsError as exc:
            problem = str(exc)
    if problem:
        return _fail(paths, problem, EXIT_INPUT)
    workers = workers or os.cpu_count() or 1
    try:
        outcome = run_forecast(
            models, period, out, reports, cluster=cluster, workers=workers, regressors=regressors
        )
    except ManifestError as exc:
        return _fail(paths, str(exc), EXIT_INPUT)
    summary = outcome.summary
    if summary["archives"] == 0 and len(cluster.hosts) == 1:
        return _fail(paths, f"no <customer>{archive.ARCHIVE_SUFFIX} under {models}", EXIT_INPUT)
    if summary["archives"] and not summary["forecast"]:
        return _fail(
            paths,
            f"none of {summary['archives']} archives could be forecast; see {outcome.failures}",
            EXIT_FAILED,
        )
    log.info("dataset: %s; failures: %s (%d)", outcome.dataset, outcome.failures, summary["failed"])
    return 0
