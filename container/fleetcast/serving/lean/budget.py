"""The lean server's memory budget: `POST /models` answers 507 rather than grow past it.

`FLEETCAST_MEMORY_MB` sets it; by default it is half of the container's memory (`serving/memory.py`).
On a 507 the SageMaker platform unloads least-recently-used models and retries, so the budget is what
keeps the container from being OOM-killed with every customer's model in it.

A load is admitted when the server's measured RSS (all its processes) and its accounted size (the empty
server plus every loaded model's estimate in every worker, up to what the workers' bounded caches can
hold) both stay within the budget after adding the new model's estimate once per worker (each worker
may hold its own copy).
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetcast.serving.environment import MEMORY_ENV
from fleetcast.serving.errors import OutOfResourcesError
from fleetcast.serving.memory import MB, memory_limit_bytes

DEFAULT_FRACTION = 0.5


class OverBudget(OutOfResourcesError):  # noqa: N818 - reads as a condition, like NotCompilable
    """Loading one more model would exceed the memory budget."""


def budget_bytes(memory_mb: float | None) -> int:
    """FLEETCAST_MEMORY_MB in bytes, or by default half the container's memory."""
    if memory_mb is None:
        return int(memory_limit_bytes() * DEFAULT_FRACTION)
    return int(memory_mb * MB)


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
