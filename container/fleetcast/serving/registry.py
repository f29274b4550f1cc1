"""The lean server's list of loaded models, shared by all its worker processes.

Design (chosen by measurement, see lean.py): every gunicorn worker keeps its own in-memory copy of the
models it has served, and a small shared store says which models are loaded:

- one file per loaded model in a private directory (in /dev/shm when there is one): JSON with the
  model's name, url, size estimate and its compiled numeric form, so another worker can build its copy
  in a fraction of a millisecond without reading the model directory or importing Prophet;
- a generation counter in shared memory (inherited through fork), bumped after every load and unload;
  a worker whose last seen generation differs rescans the directory and drops what is gone;
- per-worker "acknowledged generation" slots, so DELETE can wait until every live worker has dropped
  its copy before it answers (SageMaker expects the memory to be free when DELETE returns);
- an estimate of the bytes all loaded models take, for the memory budget.

Writers serialise on an flock (released by the kernel if a worker dies holding it); readers take no lock.
Each load's file is named after the model and the generation that published it, so a re-loaded name is
a new entry; the 409 check and the publishing rename happen under the lock.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import multiprocessing
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

ENTRY_PREFIX = "m."
GENERATION_SEPARATOR = "+"
MAX_NAME_BYTES = 200  # file names stop at 255 bytes; the quoted name must fit with the prefix
MAX_WORKER_SLOTS = 128
ACK_POLL_SECONDS = 0.005


class RegistryError(Exception):
    """A model name or registry state that makes a management call fail (carries an HTTP status)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Entry:
    name: str
    url: str
    estimate_bytes: int
    document: dict[str, Any]  # everything the loader stored (compiled form, metadata, ...)
    key: str  # the entry's file name: unique per load, so a re-loaded name is a different entry


def check_name(name: str) -> str:
    """The model name percent-quoted for a file name (no '/', no dot names); 400 if unusable."""
    if not name:
        raise RegistryError(400, "bad_model_name", "model_name must be a non-empty string")
    if any(ord(ch) < 32 for ch in name):
        raise RegistryError(400, "bad_model_name", f"model_name {name!r} contains control characters")
    quoted = quote(name, safe="")
    if len(quoted) > MAX_NAME_BYTES:
        raise RegistryError(
            400,
            "bad_model_name",
            f"model_name is too long ({len(quoted)} bytes quoted; limit {MAX_NAME_BYTES})",
        )
    return quoted


def entry_file_name(name: str, generation: int) -> str:
    # quote() escapes '+', so the last '+' always separates the name from the load's generation.
    return f"{ENTRY_PREFIX}{check_name(name)}{GENERATION_SEPARATOR}{generation}"


def name_from_file(file_name: str) -> str | None:
    if not file_name.startswith(ENTRY_PREFIX) or GENERATION_SEPARATOR not in file_name:
        return None
    return unquote(file_name[len(ENTRY_PREFIX) :].rsplit(GENERATION_SEPARATOR, 1)[0])


def default_store_parent() -> str:
    """/dev/shm when usable (memory-backed, like a container's tmpfs), else the temp directory."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        return shm
    return tempfile.gettempdir()


STORE_PREFIX = "fleetcast-lean-"


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


class SharedRegistry:
    """Create it in the parent before forking workers; every worker then shares its state."""

    def __init__(self, directory: Path | None = None) -> None:
        if directory is None:
            prefix = f"{STORE_PREFIX}{os.getpid()}-"
            directory = Path(tempfile.mkdtemp(prefix=prefix, dir=default_store_parent()))
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_path = self.directory / ".lock"
        self._lock_path.touch()
        # Anonymous shared memory: plain reads are atomic 8-byte loads; writes happen under the flock.
        self._generation = multiprocessing.RawValue(ctypes.c_longlong, 0)
        self._estimate_total = multiprocessing.RawValue(ctypes.c_longlong, 0)
        self._slot_pids = multiprocessing.RawArray(ctypes.c_longlong, MAX_WORKER_SLOTS)
        self._slot_acks = multiprocessing.RawArray(ctypes.c_longlong, MAX_WORKER_SLOTS)
        self._owner_pid = os.getpid()

    # ---- shared counters ---------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self._generation.value

    @property
    def estimate_total(self) -> int:
        return self._estimate_total.value

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self._lock_path, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

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

    def wait_for_acknowledgements(self, generation: int, timeout: float, own_slot: int | None) -> list[int]:
        """Wait until every live worker has seen `generation`; returns the pids that had not."""
        deadline = time.monotonic() + timeout
        while True:
            lagging = [
                int(self._slot_pids[slot])
                for slot in range(MAX_WORKER_SLOTS)
                if slot != own_slot
                and self._slot_pids[slot] != 0
                and self._slot_acks[slot] < generation
                and _alive(self._slot_pids[slot])
            ]
            if not lagging or time.monotonic() >= deadline:
                return lagging
            time.sleep(ACK_POLL_SECONDS)

    # ---- entries -----------------------------------------------------------------------------------

    def listing(self) -> dict[str, str]:
        """{model name: entry key} of every loaded model."""
        found = {}
        with os.scandir(self.directory) as entries:
            for item in entries:
                name = name_from_file(item.name)
                if name is not None:
                    found[name] = item.name
        return found

    def names(self) -> list[str]:
        return sorted(self.listing())

    def contains(self, name: str) -> bool:
        check_name(name)
        return name in self.listing()

    def add(
        self, name: str, url: str, estimate_bytes: int, document: dict[str, Any], admit: Any = None
    ) -> int:
        """Publish a loaded model; 409 if the name is taken. `admit(estimate_total)` may raise (507).

        Returns the new generation.
        """
        check_name(name)
        body = json.dumps({"name": name, "url": url, "estimate_bytes": int(estimate_bytes), **document})
        temp = self.directory / f".tmp-{uuid.uuid4().hex}"
        temp.write_text(body)
        try:
            with self._locked():
                if name in self.listing():
                    raise RegistryError(409, "model_already_loaded", f"model {name!r} is already loaded")
                if admit is not None:
                    admit(self._estimate_total.value)
                generation = self._generation.value + 1
                os.rename(temp, self.directory / entry_file_name(name, generation))
                self._estimate_total.value += int(estimate_bytes)
                self._generation.value = generation
                return generation
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    def remove(self, name: str) -> tuple[Entry, int]:
        """Unpublish a model; 404 if it is not loaded. Returns (the entry, the new generation)."""
        check_name(name)
        with self._locked():
            entry = self.read(name)
            if entry is None:
                raise RegistryError(404, "model_not_found", f"model {name!r} is not loaded")
            os.unlink(self.directory / entry.key)
            self._estimate_total.value -= entry.estimate_bytes
            self._generation.value += 1
            return entry, self._generation.value

    def read(self, name: str, key: str | None = None) -> Entry | None:
        """The entry for `name` (or exactly the entry `key`), None if it is not loaded."""
        if key is None:
            key = self.listing().get(name)
            if key is None:
                return None
        try:
            data = json.loads((self.directory / key).read_bytes())
        except FileNotFoundError:
            return None
        return Entry(
            name=data["name"],
            url=data["url"],
            estimate_bytes=int(data["estimate_bytes"]),
            document=data,
            key=key,
        )

    def close(self) -> None:
        """Remove the store (the parent does this once every worker has stopped)."""
        if os.getpid() == self._owner_pid:
            shutil.rmtree(self.directory, ignore_errors=True)


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
