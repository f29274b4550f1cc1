"""The endpoint's cache policy, in one place: which models stay loaded and which stay on disk.

SageMaker keeps a model loaded in the container until memory runs short (the container answers 507) and
keeps its files on the instance disk until the disk fills, evicting the least recently used first. The
`LruPolicy` below is that rule as one object; the endpoint only asks it who goes next. It is not
thread-safe by itself: the endpoint calls it under its own lock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


@dataclass
class LruPolicy:
    """Least-recently-used entries with a budget; pinned entries (in use) are never chosen for eviction.

    `budget` is in the unit of each entry's cost (1 per loaded model; bytes for the disk cache); None means
    unlimited, which leaves only the container's 507 answers to trigger eviction.
    """

    name: str
    budget: int | None
    _cost: OrderedDict[str, int] = field(default_factory=OrderedDict)  # least recently used first
    _pins: dict[str, int] = field(default_factory=dict)

    def __contains__(self, key: str) -> bool:
        return key in self._cost

    def __iter__(self) -> Iterator[str]:
        """Least recently used first."""
        return iter(list(self._cost))

    def __len__(self) -> int:
        return len(self._cost)

    @property
    def total(self) -> int:
        return sum(self._cost.values())

    def keys(self) -> list[str]:
        """Least recently used first."""
        return list(self._cost)

    def add(self, key: str, cost: int = 1) -> None:
        self._cost[key] = cost
        self._cost.move_to_end(key)

    def touch(self, key: str) -> None:
        if key in self._cost:
            self._cost.move_to_end(key)

    def remove(self, key: str) -> None:
        self._cost.pop(key, None)

    def pin(self, key: str) -> None:
        self._pins[key] = self._pins.get(key, 0) + 1

    def unpin(self, key: str) -> None:
        count = self._pins.get(key, 0) - 1
        if count > 0:
            self._pins[key] = count
        else:
            self._pins.pop(key, None)

    def is_pinned(self, key: str) -> bool:
        return key in self._pins

    def eviction_candidates(self, exclude: Iterable[str] = ()) -> list[str]:
        """Unpinned entries, least recently used first."""
        skip = set(exclude)
        return [key for key in self._cost if key not in self._pins and key not in skip]

    def over_budget_victims(self, incoming_cost: int = 0, exclude: Iterable[str] = ()) -> list[str]:
        """The least recently used unpinned entries to evict so that `incoming_cost` more fits the budget.

        May return fewer than needed when the rest is pinned: the budget is then exceeded until the pinned
        entries are released, rather than blocking a request.
        """
        if self.budget is None:
            return []
        excess = self.total + incoming_cost - self.budget
        victims: list[str] = []
        for key in self.eviction_candidates(exclude):
            if excess <= 0:
                break
            victims.append(key)
            excess -= self._cost[key]
        return victims


@dataclass(frozen=True)
class CachePolicy:
    """The endpoint's knobs: `--max-loaded`, `--disk-cache-mb`, and how hard to try on a 507."""

    max_loaded: int | None = None
    disk_cache_bytes: int | None = None
    max_load_attempts: int = 4  # one load plus up to three evict-and-retry rounds on 507

    def loaded_lru(self) -> LruPolicy:
        return LruPolicy(name="loaded models", budget=self.max_loaded)

    def disk_lru(self) -> LruPolicy:
        return LruPolicy(name="disk cache", budget=self.disk_cache_bytes)
