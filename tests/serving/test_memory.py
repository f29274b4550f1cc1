"""Memory as the container sees it (one module for both servers), and the MMS handler's 507 guard."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest
from mms.model_service_worker import MXNetModelServiceWorker

from fleetcast.serving import memory
from fleetcast.serving.lean.budget import budget_bytes
from fleetcast.serving.memory import MB

HUGE = str(10**9)  # MB: more than any machine has


def cgroup_v2(root: Path, limit: str, current: int, inactive_file: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "memory.max").write_text(f"{limit}\n")
    (root / "memory.current").write_text(f"{current}\n")
    (root / "memory.stat").write_text(f"anon 1\ninactive_file {inactive_file}\nactive_file 5\n")
    return root


def cgroup_v1(root: Path, limit: int, usage: int, inactive_file: int) -> Path:
    memory = root / "memory"
    memory.mkdir(parents=True, exist_ok=True)
    (memory / "memory.limit_in_bytes").write_text(f"{limit}\n")
    (memory / "memory.usage_in_bytes").write_text(f"{usage}\n")
    (memory / "memory.stat").write_text(f"cache 9\ntotal_inactive_file {inactive_file}\n")
    return root


def test_cgroup_v2_limit_minus_usage_without_page_cache(tmp_path):
    root = cgroup_v2(tmp_path, str(1024 * MB), 900 * MB, 100 * MB)
    assert memory.cgroup_memory(root) == (1024 * MB, 800 * MB)
    assert memory.available_memory_bytes(root) == 224 * MB
    assert memory.memory_limit_bytes(root) == 1024 * MB
    shortfall = memory.memory_shortfall(256 * MB, root)
    assert shortfall and "only 224 MB of memory available" in shortfall and "256 MB free" in shortfall
    assert memory.memory_shortfall(200 * MB, root) is None
    assert memory.memory_shortfall(0, root) is None


def test_cgroup_v1_limit(tmp_path):
    root = cgroup_v1(tmp_path, 2048 * MB, 1800 * MB, 0)
    assert memory.available_memory_bytes(root) == 248 * MB
    assert memory.memory_shortfall(256 * MB, root)


@pytest.mark.parametrize(
    "make",
    [
        lambda root: cgroup_v2(root, "max", 10, 0),
        lambda root: cgroup_v1(root, 9223372036854771712, 10, 0),
        lambda root: root,
    ],
)
def test_no_cgroup_limit_means_the_host_memory(tmp_path, make):
    root = make(tmp_path)
    assert memory.cgroup_memory(root) is None
    assert memory.memory_limit_bytes(root) == psutil.virtual_memory().total
    assert 0 < memory.available_memory_bytes(root) <= psutil.virtual_memory().total


def test_the_lean_budget_and_mms_see_the_same_limit(tmp_path, monkeypatch):
    """One computation: the lean server's default budget is half of what the MMS side calls the limit."""
    root = cgroup_v2(tmp_path, str(1024 * MB), 10, 0)
    monkeypatch.setattr(memory, "CGROUP_ROOT", root)
    monkeypatch.setattr(memory.memory_limit_bytes, "__defaults__", (root,))
    assert memory.memory_limit_bytes() == 1024 * MB
    assert budget_bytes(None) == 512 * MB


def test_memory_limit_is_at_most_physical_memory():
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < memory.memory_limit_bytes() <= physical


def test_mms_worker_answers_507_when_memory_is_short(models, tmp_path, monkeypatch):
    """MMS's own worker code turns the handler's MemoryError into the 507 the contract asks for."""
    worker = MXNetModelServiceWorker("unix", str(tmp_path / "sock"), tmp_dir=str(tmp_path))
    request = {
        "modelPath": str(models["daily"].model_dir).encode(),
        "modelName": b"daily",
        "handler": b"fleetcast.serving.mms.handler",
    }
    monkeypatch.setenv("FLEETCAST_MIN_FREE_MB", HUGE)
    message, status = worker.load_model(request)
    assert status == 507, message
    monkeypatch.setenv("FLEETCAST_MIN_FREE_MB", "0")
    message, status = worker.load_model(request)
    assert status == 200, message
