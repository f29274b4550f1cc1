"""The lean server's shared registry and memory budget, without a server: real files, real forks."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from fleetcast.serving.errors import ServingError, http_status
from fleetcast.serving.lean.budget import MemoryBudget, OverBudget, budget_bytes
from fleetcast.serving.lean.registry import (
    PRUNE_EVERY,
    STORE_PREFIX,
    SharedRegistry,
    check_name,
    remove_stale_stores,
)
from fleetcast.serving.memory import memory_limit_bytes, server_rss_bytes

DOCUMENT = {"kind": "compiled", "customer": "7"}


@pytest.fixture
def registry(tmp_path):
    store = SharedRegistry(tmp_path / "registry")
    yield store
    store.close()


@pytest.mark.parametrize("name", ["m1", "7.tar.gz", "a/b", "..", ".", "ünïcode", "x" * 255, "sp ace%"])
def test_any_printable_model_name_is_stored_as_given(registry, name):
    registry.add(name, "/u", 1, DOCUMENT)
    assert registry.read(name).name == name and registry.names() == [name]


@pytest.mark.parametrize("name", ["", "x" * 256, "ü" * 128, "tab\tname"])
def test_unusable_names_are_400(name):
    with pytest.raises(ServingError) as caught:
        check_name(name)
    assert http_status(caught.value) == 400 and caught.value.message


def test_add_read_list_remove(registry):
    assert registry.generation == 0 and registry.names() == []
    registry.add("b", "/models/b/model", 1000, DOCUMENT)
    registry.add("a", "/models/a/model", 500, DOCUMENT)
    assert registry.names() == ["a", "b"]
    assert registry.generation == 2 and registry.estimate_total == 1500
    entry = registry.read("a")
    assert (
        entry.url == "/models/a/model" and entry.document["customer"] == "7" and entry.estimate_bytes == 500
    )

    with pytest.raises(ServingError) as caught:
        registry.add("a", "/elsewhere", 1, DOCUMENT)
    assert http_status(caught.value) == 409
    assert registry.estimate_total == 1500 and registry.generation == 2  # a refused add changes nothing

    removed, generation = registry.remove("a")
    assert removed.url == "/models/a/model" and generation == 3
    assert registry.read("a") is None and registry.names() == ["b"] and registry.estimate_total == 1000
    with pytest.raises(ServingError) as caught:
        registry.remove("a")
    assert http_status(caught.value) == 404
    assert registry.removed_since(0) == ["a"] and registry.removed_since(generation) == []


def test_reloaded_name_is_a_different_entry(registry):
    registry.add("a", "/one", 1, DOCUMENT)
    first = registry.listing()["a"]
    registry.remove("a")
    registry.add("a", "/two", 1, DOCUMENT)
    assert registry.listing()["a"] != first
    assert registry.read("a").url == "/two" and registry.read("a", first) is None


def test_admission_check_runs_under_the_lock_and_can_refuse(registry):
    seen = []

    def refuse(total: int) -> None:
        seen.append(total)
        raise OverBudget("full")

    registry.add("a", "/a", 100, DOCUMENT)
    with pytest.raises(OverBudget):
        registry.add("b", "/b", 100, DOCUMENT, admit=refuse)
    assert seen == [100] and registry.names() == ["a"] and registry.estimate_total == 100


def _add_in_child(registry: SharedRegistry, name: str) -> None:
    registry.add(name, f"/{name}", 10, DOCUMENT)


def test_forked_workers_share_the_counters_and_entries(registry):
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_add_in_child, args=(registry, f"m{i}")) for i in range(4)]
    for child in children:
        child.start()
    for child in children:
        child.join(30)
        assert child.exitcode == 0
    assert registry.names() == ["m0", "m1", "m2", "m3"]
    assert registry.generation == 4 and registry.estimate_total == 40


def _ack_later(registry: SharedRegistry, slot: int, generation: int, delay: float) -> None:
    time.sleep(delay)
    registry.acknowledge(slot, generation)


def test_unload_waits_for_every_live_worker_to_acknowledge(registry):
    context = multiprocessing.get_context("fork")
    sleeper = context.Process(target=time.sleep, args=(30,))
    sleeper.start()
    try:
        slot = registry.claim_slot(sleeper.pid)
        mine = registry.claim_slot()
        assert slot != mine
        registry.add("a", "/a", 1, DOCUMENT)
        _, generation = registry.remove("a")
        # Nobody acknowledges: the wait ends at its timeout and names the lagging worker.
        assert registry.wait_for_acknowledgements(generation, 0.1, own_slot=mine) == [sleeper.pid]
        acker = context.Process(target=_ack_later, args=(registry, slot, generation, 0.2))
        acker.start()
        began = time.monotonic()
        assert registry.wait_for_acknowledgements(generation, 10, own_slot=mine) == []
        assert 0.1 < time.monotonic() - began < 5
        acker.join(10)
    finally:
        sleeper.kill()
        sleeper.join(10)
    # A dead worker's slot never blocks an unload, and is reused.
    registry.add("b", "/b", 1, DOCUMENT)
    _, generation = registry.remove("b")
    assert registry.wait_for_acknowledgements(generation, 0.1, own_slot=mine) == []
    assert registry.claim_slot() == slot


def test_close_removes_the_store(tmp_path):
    store = SharedRegistry(tmp_path / "r")
    store.add("a", "/a", 1, DOCUMENT)
    store.close()
    assert not (tmp_path / "r").exists()


# ---- budget ------------------------------------------------------------------------------------------


def test_budget_defaults_to_half_the_memory_limit_and_follows_the_setting():
    assert budget_bytes(None) == int(memory_limit_bytes() * 0.5)
    assert budget_bytes(512) == 512 * 1024 * 1024
    assert http_status(OverBudget("full")) == 507


def test_budget_counts_a_copy_per_worker_and_the_measured_rss():
    budget = MemoryBudget(limit_bytes=1000, baseline_bytes=400, workers=2)
    budget.admit(new_estimate=100, loaded_estimate_total=100, measured_rss=0)  # 400 + 200 + 200 = 800
    with pytest.raises(OverBudget, match="FLEETCAST_MEMORY_MB"):
        budget.admit(new_estimate=100, loaded_estimate_total=250, measured_rss=0)  # 400 + 500 + 200
    with pytest.raises(OverBudget):
        budget.admit(new_estimate=10, loaded_estimate_total=0, measured_rss=990)  # measured beats accounted


def test_server_rss_sums_the_process_and_its_children():
    context = multiprocessing.get_context("fork")
    child = context.Process(target=time.sleep, args=(10,))
    child.start()
    try:
        assert server_rss_bytes(os.getpid()) > server_rss_bytes(child.pid) > 0
    finally:
        child.kill()
        child.join(10)


def test_stores_of_dead_servers_are_removed_and_live_ones_kept(tmp_path):
    context = multiprocessing.get_context("fork")
    dead = context.Process(target=time.sleep, args=(0,))
    dead.start()
    dead.join(10)
    stale = tmp_path / f"{STORE_PREFIX}{dead.pid}-abc"
    live = tmp_path / f"{STORE_PREFIX}{os.getpid()}-def"
    unrelated = tmp_path / f"{STORE_PREFIX}notapid-x"
    for directory in (stale, live, unrelated):
        directory.mkdir()
    assert remove_stale_stores(str(tmp_path)) == [stale]
    assert not stale.exists() and live.exists() and unrelated.exists()
    store = SharedRegistry()
    try:
        assert store.directory.name.startswith(f"{STORE_PREFIX}{os.getpid()}-")
    finally:
        store.close()


# ---- scale and exhaustion ------------------------------------------------------------------------------


def test_a_worker_reads_only_the_changes_since_its_generation(registry):
    for index in range(500):
        registry.add(f"m{index}", "/u", 1, DOCUMENT)
    seen = registry.generation
    registry.remove("m3")
    registry.remove("m7")
    assert registry.removed_since(seen) == ["m3", "m7"]
    assert registry.removed_since(registry.generation) == []
    page, more = registry.page(10, 5)
    assert [name for name, _ in page] == sorted(f"m{i}" for i in range(500) if i not in (3, 7))[10:15]
    assert more and len(registry.page(495, 5)[0]) == 3 and not registry.page(495, 5)[1]
    assert registry.page(498, 5) == ([], False)


def test_removal_log_is_pruned_once_every_live_worker_has_seen_it(registry):
    slot = registry.claim_slot()
    for index in range(PRUNE_EVERY + 1):
        registry.add(f"m{index}", "/u", 1, DOCUMENT)
        registry.remove(f"m{index}")
        registry.acknowledge(slot, registry.generation)
    assert len(registry.removed_since(0)) < PRUNE_EVERY


def test_a_full_store_is_a_507_and_changes_nothing(tmp_path):
    store = SharedRegistry(tmp_path / "small", max_models=2)
    try:
        store.add("a", "/a", 1, DOCUMENT)
        store.add("b", "/b", 1, DOCUMENT)
        with pytest.raises(ServingError) as caught:
            store.add("c", "/c", 1, DOCUMENT)
        assert http_status(caught.value) == 507 and "FLEETCAST_MAX_MODELS" in caught.value.message
        assert store.names() == ["a", "b"] and store.count == 2 and store.generation == 2
        store.remove("a")
        store.add("c", "/c", 1, DOCUMENT)  # room again after an unload
    finally:
        store.close()


def test_a_store_out_of_space_is_a_507(tmp_path):
    """SQLite's own SQLITE_FULL (as on a full tmpfs), made real by capping the database's pages."""
    store = SharedRegistry(tmp_path / "tiny")
    try:
        store._connection().execute("PRAGMA max_page_count = 8")
        with pytest.raises(ServingError) as caught:
            for index in range(1000):
                store.add(f"m{index}", "/u", 1, {**DOCUMENT, "payload": "x" * 2000})
        assert http_status(caught.value) == 507 and caught.value.code == "insufficient_storage"
        assert store.count == len(store.names()) > 0
    finally:
        store.close()
