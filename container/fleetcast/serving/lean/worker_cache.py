"""A lean worker's own copies of the loaded models: a bounded LRU kept in step with the registry.

Also the process-memory tuning the workers need (few malloc arenas; freed model memory handed back
to the OS after unloads).
"""

from __future__ import annotations

import ctypes
import gc
import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from fleetcast.serving.environment import DEFAULT_WORKER_CACHE_MODELS
from fleetcast.serving.lean.registry import SharedRegistry
from fleetcast.serving.predictors import (
    LoadedModel,
    Predictor,
    from_document,
)

log = logging.getLogger("fleetcast.serving.lean")

# How often an idle worker checks for unloaded models.
WATCH_SECONDS = 0.01
# Unloads come in bursts (the platform evicts many models under pressure): trim once the burst is over.
TRIM_AFTER_SECONDS = 0.2
M_ARENA_MAX = -8  # glibc mallopt parameter
MALLOC_ARENAS = 2


def _libc() -> Any:
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:  # not glibc: nothing to tune
        return None


LIBC = _libc()


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """Few malloc arenas: glibc gives each thread its own, and freed model memory then stays scattered
    over them instead of going back to the OS. Set in the master, inherited by every worker."""
    if LIBC is not None and hasattr(LIBC, "mallopt"):
        LIBC.mallopt(M_ARENA_MAX, arenas)


def release_memory() -> None:
    """After unloads: collect cycles and hand freed heap pages back to the OS (DELETE frees for real)."""
    gc.collect()
    if LIBC is not None and hasattr(LIBC, "malloc_trim"):
        LIBC.malloc_trim(0)


class WorkerModels:
    """This process's copies of the loaded models: a bounded LRU cache kept in step with the registry.

    A copy is built from the registry's compiled document on first use (~0.1 ms); at most `capacity`
    copies stay (FLEETCAST_WORKER_CACHE_MODELS), so a worker's memory does not grow with the number of
    loaded models, only the shared store does.
    """

    def __init__(self, registry: SharedRegistry, capacity: int = DEFAULT_WORKER_CACHE_MODELS) -> None:
        self.registry = registry
        self.capacity = capacity
        self.local: OrderedDict[str, Predictor] = OrderedDict()  # least recently used first
        self.seen_generation = registry.generation
        self.slot: int | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._dropped_at: float | None = None

    def sync(self) -> None:
        """Drop the copies of models unloaded since the last sync (only those changes are read)."""
        generation = self.registry.generation
        if generation == self.seen_generation:
            return
        with self._lock:
            generation = self.registry.generation
            gone = self.registry.removed_since(self.seen_generation)
            dropped = [name for name in gone if self.local.pop(name, None) is not None]
            self.seen_generation = max(self.seen_generation, generation)
        if dropped:
            self._dropped_at = time.monotonic()
        if self.slot is not None:
            self.registry.acknowledge(self.slot, generation)

    def get(self, name: str) -> Predictor | None:
        self.sync()
        with self._lock:
            predictor = self.local.get(name)
            if predictor is not None:
                self.local.move_to_end(name)
                return predictor
        generation = self.registry.generation
        entry = self.registry.read(name)
        if entry is None:
            return None
        predictor = from_document(entry.document)
        self._remember(name, predictor, generation)
        return predictor

    def keep(self, name: str, loaded: LoadedModel, generation: int) -> None:
        self._remember(name, loaded.predictor, generation)

    def _remember(self, name: str, predictor: Predictor, generation: int) -> None:
        with self._lock:
            # Cache it only if nothing changed since it was read: a DELETE may have raced us, and this
            # worker could already have acknowledged it.
            if self.registry.generation != generation or self.capacity == 0:
                return
            self.local[name] = predictor
            self.local.move_to_end(name)
            while len(self.local) > self.capacity:
                self.local.popitem(last=False)

    def drop(self, name: str) -> None:
        with self._lock:
            self.local.pop(name, None)
        self._dropped_at = time.monotonic()

    def start_watching(self) -> None:
        """In a worker: claim an acknowledgement slot and drop unloaded models even when idle."""
        self.slot = self.registry.claim_slot()
        with self._lock:
            self.local.clear()  # a fresh worker: nothing to reconcile, only changes from here on
            self.seen_generation = self.registry.generation
        self.registry.acknowledge(self.slot, self.seen_generation)
        threading.Thread(target=self._watch, name="model-registry-watch", daemon=True).start()

    def stop_watching(self) -> None:
        self._stop.set()
        if self.slot is not None:
            self.registry.release_slot(self.slot)
            self.slot = None

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_SECONDS):
            try:
                self.sync()
                dropped_at = self._dropped_at
                if dropped_at is not None and time.monotonic() - dropped_at > TRIM_AFTER_SECONDS:
                    self._dropped_at = None
                    release_memory()
            except Exception:  # the watcher must outlive a transient filesystem hiccup
                log.exception("model registry watch failed")
                time.sleep(1)
