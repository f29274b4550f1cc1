"""The lean server's memory budget: `POST /models` answers 507 rather than grow past it.

`FLEETCAST_MEMORY_MB` sets it; by default it is half of the container's memory limit (cgroup v2
`memory.max` or v1 `memory.limit_in_bytes`), or of physical RAM when there is no limit. On a 507 the
SageMaker platform unloads least-recently-used models and retries, so the budget is what keeps the
container from being OOM-killed with every customer's model in it.

A load is admitted when the server's measured RSS (all its processes) and its accounted size (the empty server
plus every loaded model's estimate in every worker, up to what the workers' bounded caches can hold)
both stay within the budget after adding the new model's estimate once per worker (each worker may
hold its own copy).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MEMORY_ENV = "FLEETCAST_MEMORY_MB"
DEFAULT_FRACTION = 0.5
MB = 1024 * 1024
CGROUP_LIMIT_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class OverBudget(Exception):  # noqa: N818 - reads as a condition, like NotCompilable
    """Loading one more model would exceed the memory budget (HTTP 507)."""


def memory_limit_bytes() -> int:
    """Physical memory, or the cgroup limit when that is smaller (an unlimited cgroup says 'max')."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in CGROUP_LIMIT_FILES:
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def budget_bytes(environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    text = environ.get(MEMORY_ENV, "").strip()
    if not text:
        return int(memory_limit_bytes() * DEFAULT_FRACTION)
    try:
        value = float(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"{MEMORY_ENV}={text!r} must be a positive number of megabytes")
    return int(value * MB)


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (0 if it is gone), from /proc without psutil's overhead."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as handle:
            return [int(child) for child in handle.read().split()]
    except OSError:
        return []


def server_rss_bytes(root_pid: int) -> int:
    """RSS of the server: the root process and its direct children (gunicorn's master and workers)."""
    return rss_bytes(root_pid) + sum(rss_bytes(child) for child in children_of(root_pid))


@dataclass(frozen=True)
class MemoryBudget:
    limit_bytes: int
    baseline_bytes: int  # the empty server, measured once its workers are up
    workers: int
    cached_bytes_cap: int | None = None  # what one worker's bounded model cache can hold at most

    def admit(self, new_estimate: int, loaded_estimate_total: int, measured_rss: int) -> None:
        """Raise OverBudget unless one more model fits."""
        per_worker = loaded_estimate_total
        if self.cached_bytes_cap is not None:
            per_worker = min(per_worker, self.cached_bytes_cap)
        accounted = self.baseline_bytes + per_worker * self.workers
        projected = max(accounted, measured_rss) + new_estimate * self.workers
        if projected > self.limit_bytes:
            raise OverBudget(
                f"loading this model (~{new_estimate / 1024:.0f} KiB per worker, {self.workers} worker(s)) "
                f"would take the server to ~{projected / MB:.0f} MB, over its memory budget of "
                f"{self.limit_bytes / MB:.0f} MB ({MEMORY_ENV}); unload models first"
            )
