"""How many rows one customer may have: `max_rows_per_customer`, sized from the instance's memory.

A worker's peak memory while fitting grows with the customer's rows (Prophet's history frame, its
feature matrices, Stan's input and output files, model.json). Measured with stock Prophet 1.5 on 20,000 and
80,000 hourly rows: 3.0-3.3 KB of peak RSS per row. BYTES_PER_ROW rounds that up to 4 KiB, and only
USABLE_FRACTION of the available memory is shared out among the workers, so the parent, the page cache and
the estimate's error have room.
"""

from __future__ import annotations

from pathlib import Path

BYTES_PER_ROW = 4096
USABLE_FRACTION = 0.8
# cgroup v2, then v1: the container's limit and what it already uses. v1 reports "no limit" as ~2**63.
_CGROUP_FILES = (
    (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")),
    (
        Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
        Path("/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ),
)
_NO_LIMIT = 2**60


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # cgroup v2 writes "max" for no limit


def mem_available(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cgroup_available() -> int | None:
    for limit_file, usage_file in _CGROUP_FILES:
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and limit < _NO_LIMIT and usage is not None:
            return max(limit - usage, 0)
    return None


def available_memory() -> int | None:
    """Bytes this container can still use: the smaller of the host's MemAvailable and the cgroup's room."""
    known = [value for value in (mem_available(), cgroup_available()) if value is not None]
    return min(known) if known else None


def rows_cap(available_bytes: int, workers: int) -> int:
    """The most rows each of `workers` concurrent fits may have within `available_bytes`."""
    return max(int(available_bytes * USABLE_FRACTION / max(workers, 1) / BYTES_PER_ROW), 1)
