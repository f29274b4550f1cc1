"""The fleet loop: every customer of this host's shard, fitted in parallel by worker processes it owns.

The parent forks the workers and talks to each over its own pipe: it sends small chunks of customers and
gets one result back per customer. Each worker publishes, in shared memory, which customer it is fitting,
so when a worker dies (OOM killer, SIGKILL, a crash in native code) the parent fails exactly that
customer with `worker died (signal N)`, hands the dead worker's unstarted customers to the others and
forks a replacement; the job goes on. A dead worker's customer is never retried within the job (and
`on_death` lets the caller remember it across a resume).

At most WINDOW_CHUNKS chunks per worker are in flight, results are handed to a callback (the report writer)
and only counters are kept, so memory does not grow with the number of customers.

A stop request (SIGTERM) sets a flag in shared memory that workers read before starting each customer:
fits already running finish and are written atomically, nothing new starts, and the rest are left for a
resume. Progress lines are written for people and for SageMaker MetricDefinitions alike.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import statistics
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.sharedctypes import RawArray, RawValue

from fleetcast.blas import one_blas_thread
from fleetcast.logs import quiet_third_party
from fleetcast.training import customer
from fleetcast.training.customer import FAILED, SKIPPED, TRAINED, CustomerResult, FitContext
from fleetcast.training.inputs import CustomerTask

log = logging.getLogger("fleetcast.train")
# Customers per message to a worker, and messages queued per worker. A chunk amortises the pipe round trip;
# two chunks keep a worker busy while the parent refills it.
CHUNK_SIZE = 4
WINDOW_CHUNKS = 2
# Failures listed by name in the summary; the report lists every one.
LISTED_FAILURES = 1000
_IDLE = -1


class StopFlag:
    """A stop request shared with the workers; `set` is safe inside a signal handler (one memory store)."""

    def __init__(self) -> None:
        self._value = RawValue("b", 0)

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return bool(self._value.value)


@dataclass
class FleetProgress:
    """Running counts over the results; no per-customer object is kept but a bounded list of failures."""

    total: int
    started: float = field(default_factory=time.perf_counter)
    processed: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {TRAINED: 0, SKIPPED: 0, FAILED: 0})
    engines: Counter[str] = field(default_factory=Counter)
    smapes: array = field(default_factory=lambda: array("d"))
    naive_smapes: array = field(default_factory=lambda: array("d"))
    cv_smapes: array = field(default_factory=lambda: array("d"))
    models: Counter[str] = field(default_factory=Counter)
    beats_naive: int = 0  # trained customers whose holdout sMAPE is below seasonal-naive's
    fits: int = 0
    fit_seconds: float = 0.0
    busy_seconds: float = 0.0  # wall time of trained customers, fit and everything around it
    failures: dict[str, str] = field(default_factory=dict)

    def add(self, result: CustomerResult) -> None:
        self.processed += 1
        self.counts[result.status] += 1
        if result.status == TRAINED:
            self.engines[result.fit_engine or "unknown"] += 1
            self.models[result.model or "unknown"] += 1
            self.fit_seconds += result.fit_seconds
            self.busy_seconds += result.seconds
            self.fits += result.fits
            if result.cv_smape is not None:
                self.cv_smapes.append(result.cv_smape)
        if result.status == FAILED and len(self.failures) < LISTED_FAILURES:
            self.failures[result.customer] = result.reason
        if result.metrics:
            self.smapes.append(result.metrics["smape"])
            self.naive_smapes.append(result.metrics["naive_smape"])
            self.beats_naive += result.metrics["smape"] < result.metrics["naive_smape"]

    @property
    def beats_naive_share(self) -> float | None:
        return round(self.beats_naive / len(self.smapes), 4) if self.smapes else None

    @property
    def fits_per_customer(self) -> float | None:
        trained = self.counts[TRAINED]
        return round(self.fits / trained, 2) if trained else None

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def models_per_second(self) -> float:
        return self.counts[TRAINED] / max(self.elapsed, 1e-9)

    @staticmethod
    def _median(values: array) -> str:
        return f"{statistics.median(values):.1f}%" if values else "n/a"

    def line(self) -> str:
        return (
            f"trained {self.processed}/{self.total} customers, {self.models_per_second:.1f} models/s, "
            f"{self.counts[FAILED]} failed, {self.counts[SKIPPED]} skipped, "
            f"median sMAPE {self._median(self.smapes)}"
        )

    def final_line(self) -> str:
        return (
            f"fleet done: {self.counts[TRAINED]} trained, {self.counts[FAILED]} failed, "
            f"{self.counts[SKIPPED]} skipped of {self.total} in {self.elapsed:.1f}s, "
            f"{self.models_per_second:.1f} models/s, median sMAPE {self._median(self.smapes)}, "
            f"naive sMAPE {self._median(self.naive_smapes)}, beats naive {self._share()}, "
            f"{self.fits_per_customer or 0:.1f} fits/customer"
        )

    def _share(self) -> str:
        share = self.beats_naive_share
        return "n/a" if share is None else f"{100 * share:.1f}%"


def death_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"worker died (signal {-exitcode})"
    return f"worker died (exit code {exitcode})"


def _warm_imports() -> None:
    """Import prophet once in the parent, so forked workers start with it loaded."""
    quiet_third_party()
    import prophet  # noqa: F401

    quiet_third_party()


def _worker_main(
    slot: int, conn: Connection, parent_ends: list[Connection], context: FitContext, stop: StopFlag, current
) -> None:
    for end in parent_ends:  # the parent's ends of this and other workers' pipes, inherited through fork:
        end.close()  # closed, so the worker sees EOF as soon as the parent is gone
    # A stop reaches the workers through the flag; a SIGTERM sent to the whole process group sets it too,
    # so the fit in hand still finishes. Ctrl-C is the parent's to handle.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    quiet_third_party()
    one_blas_thread()
    while True:
        try:
            chunk = conn.recv()
        except EOFError:  # the parent is gone
            return
        if chunk is None:
            return
        for seq, task in chunk:
            if stop.is_set():
                conn.send((seq, None))
                continue
            current[slot] = seq
            # Looked up at call time, so the fitting function is whatever the customer module holds.
            result = customer.train_customer(task, context)
            conn.send((seq, result))
            current[slot] = _IDLE


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    held: deque[tuple[int, CustomerTask]] = field(default_factory=deque)  # in the order it fits them

    @property
    def has_room(self) -> bool:
        return len(self.held) <= CHUNK_SIZE * (WINDOW_CHUNKS - 1)


class _Pool:
    def __init__(self, size: int, context: FitContext, stop: StopFlag) -> None:
        self._mp = multiprocessing.get_context("fork")
        self._context, self._stop = context, stop
        self.current = RawArray("q", [_IDLE] * size)
        self.workers: list[_Worker | None] = [None] * size
        for slot in range(size):
            self.start(slot)

    def start(self, slot: int) -> None:
        self.current[slot] = _IDLE
        parent_end, child_end = self._mp.Pipe()
        parent_ends = [parent_end, *(worker.conn for _, worker in self.live())]
        process = self._mp.Process(
            target=_worker_main,
            args=(slot, child_end, parent_ends, self._context, self._stop, self.current),
            name=f"fleetcast-worker-{slot}",
            daemon=True,
        )
        process.start()
        child_end.close()
        self.workers[slot] = _Worker(process, parent_end)

    def live(self) -> list[tuple[int, _Worker]]:
        return [(slot, w) for slot, w in enumerate(self.workers) if w is not None]

    def busy(self) -> bool:
        return any(w.held for _, w in self.live())

    def shutdown(self) -> None:
        for _, worker in self.live():
            with contextlib.suppress(OSError):  # already dead
                worker.conn.send(None)
        for slot, worker in self.live():
            worker.process.join(timeout=30)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
            self.workers[slot] = None


class _FleetRun:
    """One pass over the tasks: keeps every worker's window full, collects results, buries the dead."""

    def __init__(
        self,
        tasks: Iterable[CustomerTask],
        pool: _Pool,
        stop: StopFlag,
        record: Callable[[CustomerResult], None],
        on_death: Callable[[str, str], None],
    ) -> None:
        self.source: Iterator[CustomerTask] = iter(tasks)
        self.retry: deque[CustomerTask] = deque()  # unstarted customers of a dead worker
        self.source_done = False
        self.seq = 0
        self.pool, self.stop, self.record, self.on_death = pool, stop, record, on_death

    @property
    def exhausted(self) -> bool:
        return self.source_done and not self.retry

    def next_chunk(self) -> list[CustomerTask]:
        chunk: list[CustomerTask] = []
        while self.retry and len(chunk) < CHUNK_SIZE:
            chunk.append(self.retry.popleft())
        for task in self.source if len(chunk) < CHUNK_SIZE else ():
            chunk.append(task)
            if len(chunk) >= CHUNK_SIZE:
                break
        return chunk

    def fill(self) -> None:
        for _slot, worker in self.pool.live():
            while worker.has_room and not self.exhausted:
                chunk = self.next_chunk()
                if not chunk:
                    self.source_done = True
                    return
                numbered = list(enumerate(chunk, start=self.seq))
                self.seq += len(chunk)
                worker.held.extend(numbered)
                try:
                    worker.conn.send(numbered)
                except OSError:  # died meanwhile: its sentinel says so, and bury() requeues the chunk
                    break

    def receive(self, worker: _Worker) -> bool:
        """Take every result the worker has sent; False once its pipe is closed."""
        try:
            while worker.conn.poll():
                done_seq, result = worker.conn.recv()
                held_seq, _task = worker.held.popleft()
                assert held_seq == done_seq, "a worker fits its customers in the order it got them"
                if result is not None:  # None: not started because of a stop request
                    self.record(result)
        except (EOFError, OSError):
            return False
        return True

    def bury(self, slot: int, worker: _Worker) -> None:
        self.receive(worker)  # results sent before it died still count
        worker.process.join()
        in_flight = self.pool.current[slot]
        reason = death_reason(worker.process.exitcode)
        for held_seq, task in worker.held:
            if held_seq == in_flight:
                log.error("worker %d (pid %s): %s while fitting customer %s", slot, worker.process.pid,
                          reason, task.customer)  # fmt: skip
                self.on_death(task.customer, reason)
                self.record(CustomerResult(task.customer, FAILED, reason=reason))
            elif not self.stop.is_set():
                self.retry.append(task)
        worker.conn.close()
        self.pool.workers[slot] = None
        if not self.stop.is_set():
            self.pool.start(slot)

    def run(self) -> None:
        while True:
            if not self.stop.is_set():
                self.fill()
            if not self.pool.busy() and (self.exhausted or self.stop.is_set()):
                return
            by_handle: dict[object, tuple[int, _Worker]] = {}
            for slot, worker in self.pool.live():
                by_handle[worker.conn] = by_handle[worker.process.sentinel] = (slot, worker)
            for handle in wait(list(by_handle), timeout=1.0):
                slot, worker = by_handle[handle]
                if self.pool.workers[slot] is not worker:
                    continue  # already buried through its other handle
                if handle is worker.conn and self.receive(worker):
                    continue
                self.bury(slot, worker)


def run_fleet(
    tasks: Iterable[CustomerTask],
    total: int,
    context: FitContext,
    workers: int,
    progress_seconds: float,
    stop: StopFlag,
    on_result: Callable[[CustomerResult], None] = lambda _result: None,
    on_death: Callable[[str, str], None] = lambda _customer, _reason: None,
) -> FleetProgress:
    progress = FleetProgress(total=total)
    next_report = time.perf_counter() + progress_seconds

    def record(result: CustomerResult) -> None:
        nonlocal next_report
        progress.add(result)
        on_result(result)
        if result.status == FAILED:
            log.warning("customer %s failed: %s", result.customer, result.reason)
        if time.perf_counter() >= next_report:
            log.info(progress.line())
            next_report = time.perf_counter() + progress_seconds

    _warm_imports()
    pool = _Pool(workers, context, stop)
    try:
        _FleetRun(tasks, pool, stop, record, on_death).run()
    finally:
        pool.shutdown()
    return progress
