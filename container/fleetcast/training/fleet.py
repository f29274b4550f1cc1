"""The fleet loop: every customer of this host's shard, fitted in parallel on all CPUs.

A bounded window of tasks is in flight at any time, so memory does not grow with the number of customers.
Progress lines are written for people and for SageMaker MetricDefinitions alike. A stop request (SIGTERM)
stops new work; fits already running finish and are written atomically, the rest are left for a resume.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import statistics
import threading
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field

from fleetcast.logs import quiet_third_party
from fleetcast.training.customer import FAILED, SKIPPED, TRAINED, CustomerResult, FitContext, train_customer
from fleetcast.training.inputs import CustomerTask

log = logging.getLogger("fleetcast.train")
WINDOW_PER_WORKER = 4


@dataclass
class FleetProgress:
    total: int
    started: float = field(default_factory=time.perf_counter)
    results: list[CustomerResult] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {TRAINED: 0, SKIPPED: 0, FAILED: 0})
    smapes: list[float] = field(default_factory=list)
    naive_smapes: list[float] = field(default_factory=list)

    def add(self, result: CustomerResult) -> None:
        self.results.append(result)
        self.counts[result.status] += 1
        if result.metrics:
            self.smapes.append(result.metrics["smape"])
            self.naive_smapes.append(result.metrics["naive_smape"])

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def models_per_second(self) -> float:
        return self.counts[TRAINED] / max(self.elapsed, 1e-9)

    @staticmethod
    def _median(values: list[float]) -> str:
        return f"{statistics.median(values):.1f}%" if values else "n/a"

    def line(self) -> str:
        return (
            f"trained {len(self.results)}/{self.total} customers, {self.models_per_second:.1f} models/s, "
            f"{self.counts[FAILED]} failed, {self.counts[SKIPPED]} skipped, "
            f"median sMAPE {self._median(self.smapes)}"
        )

    def final_line(self) -> str:
        return (
            f"fleet done: {self.counts[TRAINED]} trained, {self.counts[FAILED]} failed, "
            f"{self.counts[SKIPPED]} skipped of {self.total} in {self.elapsed:.1f}s, "
            f"{self.models_per_second:.1f} models/s, median sMAPE {self._median(self.smapes)}, "
            f"naive sMAPE {self._median(self.naive_smapes)}"
        )


def _init_worker() -> None:
    # Workers leave stopping to the parent: it finishes in-flight fits and exits cleanly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    quiet_third_party()


def _warm_imports() -> None:
    """Import prophet once in the parent, so forked workers start with it loaded."""
    quiet_third_party()
    import prophet  # noqa: F401

    quiet_third_party()


def run_fleet(
    tasks: Iterable[CustomerTask],
    total: int,
    context: FitContext,
    workers: int,
    progress_seconds: float,
    stop: threading.Event,
) -> FleetProgress:
    progress = FleetProgress(total=total)
    next_report = time.perf_counter() + progress_seconds

    def record(result: CustomerResult) -> None:
        nonlocal next_report
        progress.add(result)
        if result.status == FAILED:
            log.warning("customer %s failed: %s", result.customer, result.reason)
        if time.perf_counter() >= next_report:
            log.info(progress.line())
            next_report = time.perf_counter() + progress_seconds

    _warm_imports()
    if workers == 1:
        for task in tasks:
            if stop.is_set():
                break
            record(train_customer(task, context))
        return progress

    window = workers * WINDOW_PER_WORKER
    pending: set[Future[CustomerResult]] = set()
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("fork"), initializer=_init_worker
    ) as pool:
        for task in tasks:
            if stop.is_set():
                break
            pending.add(pool.submit(train_customer, task, context))
            if len(pending) >= window:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    record(future.result())
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                record(future.result())
    return progress
