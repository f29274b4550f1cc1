"""Memory as the container sees it, and the 507 guard MMS turns into `POST /models` -> 507."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
from mms.model_service_worker import MXNetModelServiceWorker

from fleetcast.serving.mms import resources
from fleetcast.serving.mms.resources import MB

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
    assert resources.cgroup_memory(root) == (1024 * MB, 800 * MB)
    assert resources.available_memory_bytes(root) == 224 * MB
    assert resources.memory_limit_bytes(root) == 1024 * MB
    shortfall = resources.memory_shortfall({"FLEETCAST_MIN_FREE_MB": "256"}, root)
    assert shortfall and "only 224 MB of memory available" in shortfall and "256 MB free" in shortfall
    assert resources.memory_shortfall({"FLEETCAST_MIN_FREE_MB": "200"}, root) is None
    assert resources.memory_shortfall({"FLEETCAST_MIN_FREE_MB": "0"}, root) is None


def test_cgroup_v1_limit(tmp_path):
    root = cgroup_v1(tmp_path, 2048 * MB, 1800 * MB, 0)
    assert resources.available_memory_bytes(root) == 248 * MB
    assert resources.memory_shortfall({}, root)  # default reserve: 256 MB


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
    assert resources.cgroup_memory(root) is None
    assert resources.memory_limit_bytes(root) == psutil.virtual_memory().total
    assert 0 < resources.available_memory_bytes(root) <= psutil.virtual_memory().total


def test_reserve_setting():
    assert resources.min_free_bytes({}) == resources.DEFAULT_MIN_FREE_MB * MB
    assert resources.min_free_bytes({"FLEETCAST_MIN_FREE_MB": " 64 "}) == 64 * MB
    with pytest.raises(ValueError, match="FLEETCAST_MIN_FREE_MB='lots' must be a whole number"):
        resources.min_free_bytes({"FLEETCAST_MIN_FREE_MB": "lots"})


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
