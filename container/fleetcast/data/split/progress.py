"""When to log a progress line on long work, and how long the work has taken."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

PROGRESS_SECONDS = 10.0


@dataclass
class Progress:
    began: float = field(default_factory=time.perf_counter)
    last: float = field(default_factory=time.perf_counter)

    def due(self) -> bool:
        now = time.perf_counter()
        if now - self.last >= PROGRESS_SECONDS:
            self.last = now
            return True
        return False

    def elapsed(self) -> float:
        return max(time.perf_counter() - self.began, 1e-9)
