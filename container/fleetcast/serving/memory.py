"""The memory a serving container has, measured in one place for both servers.

The container's limit is the host's physical memory, or its cgroup's limit (v2 `memory.max`, v1
`memory.limit_in_bytes`) when that is smaller. The lean server sizes its memory budget from it
(`lean/budget.py`); the MMS handler refuses another model when too little of it is available
(`mms/handler.py`). Both answer `POST /models` with 507 rather than let the kernel's OOM killer pick a
process, and the platform then unloads idle models and retries.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from fleetcast.serving.environment import MIN_FREE_ENV

CGROUP_ROOT = Path("/sys/fs/cgroup")
MB = 1024 * 1024
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _stat_value(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0


def cgroup_memory(root: Path = CGROUP_ROOT) -> tuple[int, int] | None:
    """(limit, used without reclaimable page cache) of this cgroup, or None when it sets no limit."""
    candidates = (
        (root / "memory.max", root / "memory.current", root / "memory.stat", "inactive_file"),
        (
            root / "memory" / "memory.limit_in_bytes",
            root / "memory" / "memory.usage_in_bytes",
            root / "memory" / "memory.stat",
            "total_inactive_file",
        ),
    )
    total = psutil.virtual_memory().total
    for limit_file, usage_file, stat_file, inactive_key in candidates:
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        # cgroup v1 spells "no limit" as a number near 2**63; v2 as "max" (not a number).
        if limit is None or usage is None or limit >= total:
            continue
        return limit, max(0, usage - _stat_value(stat_file, inactive_key))
    return None


def memory_limit_bytes(root: Path = CGROUP_ROOT) -> int:
    """The container's memory: physical memory, or the cgroup's limit when that is smaller."""
    cgroup = cgroup_memory(root)
    total = psutil.virtual_memory().total
    return min(total, cgroup[0]) if cgroup else total


def available_memory_bytes(root: Path = CGROUP_ROOT) -> int:
    available = psutil.virtual_memory().available
    cgroup = cgroup_memory(root)
    if cgroup:
        limit, used = cgroup
        available = min(available, max(0, limit - used))
    return available


def memory_shortfall(reserve_bytes: int, root: Path = CGROUP_ROOT) -> str | None:
    """Why another model must not be loaded now (less than `reserve_bytes` available), or None."""
    if reserve_bytes == 0:
        return None
    available = available_memory_bytes(root)
    if available >= reserve_bytes:
        return None
    return (
        f"only {available // MB} MB of memory available, {MIN_FREE_ENV} keeps {reserve_bytes // MB} MB "
        "free; unload a model and retry"
    )


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
    """RSS of a server: the root process and its direct children (gunicorn's master and workers)."""
    return rss_bytes(root_pid) + sum(rss_bytes(child) for child in children_of(root_pid))
