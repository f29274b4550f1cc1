"""Memory as the container sees it: the host's, or the cgroup's limit when one is set (v1 or v2).

The multi-model contract asks a container to answer `POST /models` with 507 when it lacks the memory for
another model, so the platform unloads idle models and retries, instead of the kernel's OOM killer
picking a process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import psutil

CGROUP_ROOT = Path("/sys/fs/cgroup")
MIN_FREE_ENV = "FLEETCAST_MIN_FREE_MB"
# A loaded model costs ~140 MB (its own MMS worker process); keep room for one more plus some slack.
DEFAULT_MIN_FREE_MB = 256
MB = 1024 * 1024


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
    for limit_file, usage_file, stat_file, inactive_key in candidates:
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        # cgroup v1 spells "no limit" as a number near 2**63; v2 as "max" (not a number).
        if limit is None or usage is None or limit >= psutil.virtual_memory().total:
            continue
        return limit, max(0, usage - _stat_value(stat_file, inactive_key))
    return None


def memory_limit_bytes(root: Path = CGROUP_ROOT) -> int:
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


def min_free_bytes(environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    text = environ.get(MIN_FREE_ENV, "").strip()
    if not text:
        return DEFAULT_MIN_FREE_MB * MB
    if not text.isdigit():
        raise ValueError(f"{MIN_FREE_ENV}={text!r} must be a whole number of MB (0 turns the check off)")
    return int(text) * MB


def memory_shortfall(environ: Mapping[str, str] | None = None, root: Path = CGROUP_ROOT) -> str | None:
    """Why another model must not be loaded now, or None when there is room."""
    reserve = min_free_bytes(environ)
    if reserve == 0:
        return None
    available = available_memory_bytes(root)
    if available >= reserve:
        return None
    return (
        f"only {available // MB} MB of memory available, {MIN_FREE_ENV} keeps {reserve // MB} MB free; "
        "unload a model and retry"
    )
