"""The lean server's list of loaded models, shared by all its worker processes.

Design (chosen by measurement: `python -m bench.serving --store`, numbers in lean.py): every gunicorn
worker keeps its own bounded cache of built predictors, and one small SQLite database in a private
directory (in /dev/shm when there is one) says which models are loaded:

- table `models`: name (unique index), url, size estimate, the generation that loaded it, and the
  model's compiled form as zlib-compressed JSON, so any worker builds its copy in a fraction of a
  millisecond without reading the model directory. (A rowid table: its ~1 KB rows sit inline, two or
  more to a page; WITHOUT ROWID spilled each to an overflow page, 4.9 KiB per model in /dev/shm.)
  Load, describe, invoke-on-a-cold-worker and unload are each one B-tree lookup
  (O(log n)); a page of the listing is one index range;
- table `removals`: (generation, name) of every unload. A generation counter in shared memory (inherited
  through fork) is bumped after every load and unload; a worker whose last seen generation differs reads
  only the removals since then (`removed_since`), never the whole table. Rows every live worker has
  seen are pruned;
- per-worker "acknowledged generation" slots in shared memory, so DELETE can wait until every live
  worker has dropped its copy before it answers (SageMaker expects the memory to be free by then);
- an estimate of the bytes all loaded models take, for the memory budget.

Writers serialise on an flock (released by the kernel if a worker dies holding it), so the database
commit and the generation bump happen as one step; readers take no lock (WAL mode). The store's own
exhaustion (tmpfs full: SQLITE_FULL; more than FLEETCAST_MAX_MODELS entries) is a 507, which makes the
platform unload models and retry.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import multiprocessing
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetcast.serving.environment import MAX_MODELS_ENV
from fleetcast.serving.errors import (
    InvalidRequestError,
    ModelAlreadyLoadedError,
    ModelNotLoadedError,
    OutOfResourcesError,
)

MAX_NAME_BYTES = 255  # model names become folder names on the platform's disk: NAME_MAX
MAX_WORKER_SLOTS = 128
ACK_POLL_SECONDS = 0.005
DATABASE_FILE = "models.sqlite"
STORE_PREFIX = "fleetcast-lean-"
BUSY_TIMEOUT_MS = 10_000
# SQLite's page cache per connection (one per worker thread); small, the OS page cache holds the rest.
CACHE_KIB = 2048
PRUNE_EVERY = 256  # removals between prunes of the removal log
# zlib level 1 halves a compiled document (~1.6 KB of JSON numbers) for ~10 us per load and per read.
DOCUMENT_COMPRESSION = 1


def store_full(detail: str) -> OutOfResourcesError:
    return OutOfResourcesError(
        f"the model registry is full ({detail}); unload models first", code="insufficient_storage"
    )


@dataclass(frozen=True)
class Entry:
    name: str
    url: str
    estimate_bytes: int
    document: dict[str, Any]  # everything the loader stored (compiled form, metadata, ...)
    key: str  # the generation that loaded it: unique per load, so a re-loaded name is a different entry


def check_name(name: str) -> str:
    """A usable model name (non-empty, printable, at most MAX_NAME_BYTES); InvalidRequestError otherwise."""
    if not name:
        raise InvalidRequestError("model_name must be a non-empty string", code="bad_model_name")
    if any(ord(ch) < 32 for ch in name):
        raise InvalidRequestError("model_name contains control characters", code="bad_model_name")
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        raise InvalidRequestError(
            f"model_name is too long ({size} bytes; limit {MAX_NAME_BYTES})", code="bad_model_name"
        )
    return name


def default_store_parent() -> str:
    """/dev/shm when usable (memory-backed, like a container's tmpfs), else the temp directory."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        return shm
    return tempfile.gettempdir()


def remove_stale_stores(parent: str | None = None) -> list[Path]:
    """Delete stores whose server died without cleaning up (SIGKILL, OOM kill); returns what went.

    A store is named after its server's pid; one whose pid is gone is stale. (A reused pid only makes
    us keep a stale store longer, never delete a live one.)
    """
    removed = []
    for store in Path(parent or default_store_parent()).glob(f"{STORE_PREFIX}*-*"):
        owner = store.name[len(STORE_PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(store, ignore_errors=True)
            removed.append(store)
    return removed


SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, url TEXT NOT NULL, estimate INTEGER NOT NULL,
    generation INTEGER NOT NULL, document BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS removals (generation INTEGER PRIMARY KEY, name TEXT NOT NULL);
"""


class SharedRegistry:
    """Create it in the parent before forking workers; every worker then shares its state."""

    def __init__(self, directory: Path | None = None, max_models: int | None = None) -> None:
        if directory is None:
            prefix = f"{STORE_PREFIX}{os.getpid()}-"
            directory = Path(tempfile.mkdtemp(prefix=prefix, dir=default_store_parent()))
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / DATABASE_FILE
        self.max_models = max_models
        self._lock_path = self.directory / ".lock"
        self._lock_path.touch()
        # Anonymous shared memory: plain reads are atomic 8-byte loads; writes happen under the flock.
        self._generation = multiprocessing.RawValue(ctypes.c_longlong, 0)
        self._estimate_total = multiprocessing.RawValue(ctypes.c_longlong, 0)
        self._count = multiprocessing.RawValue(ctypes.c_longlong, 0)
        self._slot_pids = multiprocessing.RawArray(ctypes.c_longlong, MAX_WORKER_SLOTS)
        self._slot_acks = multiprocessing.RawArray(ctypes.c_longlong, MAX_WORKER_SLOTS)
        self._owner_pid = os.getpid()
        self._local = threading.local()
        with self._connection() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    # ---- connections: one per thread and process (SQLite connections never cross a fork) -----------

    def _connection(self) -> sqlite3.Connection:
        held = getattr(self._local, "db", None)
        if held is not None and self._local.pid == os.getpid():
            return held
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        db.execute("PRAGMA synchronous=OFF")  # memory-backed and private: durability buys nothing
        db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self._local.db, self._local.pid = db, os.getpid()
        return db

    # ---- shared counters ---------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self._generation.value

    @property
    def estimate_total(self) -> int:
        return self._estimate_total.value

    @property
    def count(self) -> int:
        return self._count.value

    def store_bytes(self) -> int:
        """What the store takes in its (memory-backed) directory: the database and its WAL."""
        total = 0
        with os.scandir(self.directory) as entries:
            for item in entries:
                if item.is_file():
                    total += item.stat().st_blocks * 512
        return total

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self._lock_path, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[tuple[sqlite3.Connection, list[Any]]]:
        """One write transaction under the flock; SQLITE_FULL / ENOSPC become OutOfResourcesError.

        The callables put in the yielded list run after the commit, still under the flock: the shared
        counters move only once the rows they announce are visible, and never out of order.
        """
        db = self._connection()
        after_commit: list[Any] = []
        with self._locked():
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db, after_commit
                except BaseException:
                    if db.in_transaction:  # SQLITE_FULL has already rolled it back
                        db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                for publish in after_commit:
                    publish()
            except sqlite3.OperationalError as exc:
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                text = str(exc).lower()
                if "full" in text or "disk" in text or "no space" in text:
                    raise store_full(str(exc)) from None
                raise
            except OSError as exc:
                raise store_full(f"{type(exc).__name__}: {exc}") from None

    # ---- worker slots (who must acknowledge an unload) ---------------------------------------------

    def claim_slot(self, pid: int | None = None) -> int:
        pid = pid or os.getpid()
        with self._locked():
            for slot in range(MAX_WORKER_SLOTS):
                holder = self._slot_pids[slot]
                if holder == 0 or not _alive(holder):
                    self._slot_pids[slot] = pid
                    self._slot_acks[slot] = self._generation.value
                    return slot
        raise RuntimeError(f"more than {MAX_WORKER_SLOTS} workers")

    def release_slot(self, slot: int) -> None:
        with self._locked():
            self._slot_pids[slot] = 0

    def acknowledge(self, slot: int, generation: int) -> None:
        self._slot_acks[slot] = generation

    def _live_slots(self) -> list[int]:
        return [
            slot
            for slot in range(MAX_WORKER_SLOTS)
            if self._slot_pids[slot] != 0 and _alive(self._slot_pids[slot])
        ]

    def wait_for_acknowledgements(self, generation: int, timeout: float, own_slot: int | None) -> list[int]:
        """Wait until every live worker has seen `generation`; returns the pids that had not."""
        deadline = time.monotonic() + timeout
        while True:
            lagging = [
                int(self._slot_pids[slot])
                for slot in self._live_slots()
                if slot != own_slot and self._slot_acks[slot] < generation
            ]
            if not lagging or time.monotonic() >= deadline:
                return lagging
            time.sleep(ACK_POLL_SECONDS)

    # ---- entries -----------------------------------------------------------------------------------

    def contains(self, name: str) -> bool:
        check_name(name)
        row = self._connection().execute("SELECT 1 FROM models WHERE name = ?", (name,)).fetchone()
        return row is not None

    def add(
        self, name: str, url: str, estimate_bytes: int, document: dict[str, Any], admit: Any = None
    ) -> int:
        """Publish a loaded model; ModelAlreadyLoadedError if the name is taken, OutOfResourcesError if the
        store is full.

        `admit(estimate_total)` runs under the lock and may raise (the memory budget's OverBudget).
        Returns the new generation.
        """
        check_name(name)
        body = zlib.compress(json.dumps(document, separators=(",", ":")).encode(), DOCUMENT_COMPRESSION)
        with self._writing() as (db, after_commit):
            if db.execute("SELECT 1 FROM models WHERE name = ?", (name,)).fetchone() is not None:
                raise ModelAlreadyLoadedError(f"model {name!r} is already loaded")
            if self.max_models is not None and self._count.value >= self.max_models:
                raise store_full(f"{self._count.value} models, {MAX_MODELS_ENV}={self.max_models}")
            if admit is not None:
                admit(self._estimate_total.value)
            generation = self._generation.value + 1
            db.execute(
                "INSERT INTO models (name, url, estimate, generation, document) VALUES (?, ?, ?, ?, ?)",
                (name, url, int(estimate_bytes), generation, body),
            )
            after_commit.append(lambda: self._publish(generation, int(estimate_bytes), 1))
        return generation

    def _publish(self, generation: int, estimate_delta: int, count_delta: int) -> None:
        self._estimate_total.value += estimate_delta
        self._count.value += count_delta
        self._generation.value = generation  # last: a reader seeing it finds every row it announces

    def remove(self, name: str) -> tuple[Entry, int]:
        """Unpublish a model (ModelNotLoadedError if it is not loaded); returns (entry, new generation)."""
        check_name(name)
        with self._writing() as (db, after_commit):
            row = db.execute(
                "DELETE FROM models WHERE name = ? RETURNING url, estimate, generation, document", (name,)
            ).fetchone()
            if row is None:
                raise ModelNotLoadedError(f"model {name!r} is not loaded")
            generation = self._generation.value + 1
            db.execute("INSERT INTO removals (generation, name) VALUES (?, ?)", (generation, name))
            if generation % PRUNE_EVERY == 0:
                self._prune(db)
            after_commit.append(lambda: self._publish(generation, -int(row[1]), -1))
        return _entry(name, row), generation

    def _prune(self, db: sqlite3.Connection) -> None:
        """Drop removals every live worker has applied (none without workers: in-process use)."""
        live = self._live_slots()
        if live:
            seen_by_all = min(self._slot_acks[slot] for slot in live)
            db.execute("DELETE FROM removals WHERE generation <= ?", (seen_by_all,))

    def removed_since(self, generation: int) -> list[str]:
        """Names unloaded after `generation` (an index range: only what changed)."""
        rows = self._connection().execute(
            "SELECT name FROM removals WHERE generation > ? ORDER BY generation", (generation,)
        )
        return [name for (name,) in rows]

    def read(self, name: str, key: str | None = None) -> Entry | None:
        """The entry for `name` (or exactly the entry `key`), None if it is not loaded."""
        row = (
            self._connection()
            .execute("SELECT url, estimate, generation, document FROM models WHERE name = ?", (name,))
            .fetchone()
        )
        if row is None or (key is not None and str(row[2]) != key):
            return None
        return _entry(name, row)

    def page(self, offset: int, limit: int) -> tuple[list[tuple[str, str]], bool]:
        """(name, url) of up to `limit` models in name order from `offset`, and whether more remain."""
        rows = (
            self._connection()
            .execute("SELECT name, url FROM models ORDER BY name LIMIT ? OFFSET ?", (limit + 1, offset))
            .fetchall()
        )
        return [(name, url) for name, url in rows[:limit]], len(rows) > limit

    def listing(self) -> dict[str, str]:
        """{model name: entry key} of every loaded model (a full scan: tests and tools, not requests)."""
        rows = self._connection().execute("SELECT name, generation FROM models")
        return {name: str(generation) for name, generation in rows}

    def names(self) -> list[str]:
        return sorted(self.listing())

    def close(self) -> None:
        """Remove the store (the parent does this once every worker has stopped)."""
        held = getattr(self._local, "db", None)
        if held is not None and self._local.pid == os.getpid():
            held.close()
            self._local.db = None
        if os.getpid() == self._owner_pid:
            shutil.rmtree(self.directory, ignore_errors=True)


def _entry(name: str, row: tuple[Any, ...]) -> Entry:
    url, estimate, generation, document = row
    return Entry(name, url, int(estimate), json.loads(zlib.decompress(document)), str(generation))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not a worker any more.
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True
