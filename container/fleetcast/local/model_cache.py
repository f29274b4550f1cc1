"""The instance disk of a multi-model endpoint: `<cache>/<id>/model` per downloaded TargetModel.

`<id>` is opaque (a hash of the TargetModel), as SageMaker's own model names are, so no TargetModel
string ever becomes a path. A model is downloaded and extracted into a temporary folder and renamed into
place in one step; removal renames it aside first, so a concurrent download of the same model never meets
a half-deleted folder. The bookkeeping (which entry goes when the disk budget is exceeded) is the
endpoint's `LruPolicy`; this module only moves files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from fleetcast.local.model_source import ModelSource
from fleetcast.serving.safe_tar import DEFAULT_MAX_EXTRACTED_BYTES, safe_extract

log = logging.getLogger(__name__)

MODEL_SUBDIR = "model"
TEMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"


def model_id(target_model: str) -> str:
    """The opaque container model name for a TargetModel (stable across restarts)."""
    return "m-" + hashlib.sha256(target_model.encode()).hexdigest()[:32]


def _tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


@dataclass(frozen=True)
class Download:
    archive_bytes: int
    extracted_bytes: int


class DiskCache:
    def __init__(
        self,
        root: Path,
        source: ModelSource,
        *,
        max_extracted_bytes: int = DEFAULT_MAX_EXTRACTED_BYTES,
    ) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.source = source
        self.max_extracted_bytes = max_extracted_bytes

    def model_dir(self, model_name: str) -> Path:
        return self.root / model_name / MODEL_SUBDIR

    def existing_entries(self) -> list[tuple[str, int]]:
        """Complete entries left by an earlier run, oldest first, as (id, bytes); clears leftovers."""
        entries: list[tuple[float, str, int]] = []
        for child in self.root.iterdir():
            if child.name.startswith((TEMP_PREFIX, TRASH_PREFIX)):
                shutil.rmtree(child, ignore_errors=True)
            elif child.is_dir() and (child / MODEL_SUBDIR).is_dir():
                entries.append((child.stat().st_mtime, child.name, _tree_bytes(child / MODEL_SUBDIR)))
        return [(name, size) for _, name, size in sorted(entries)]

    def download(self, target_model: str, model_name: str) -> Download:
        """Fetch and safely extract the TargetModel to `model_dir(model_name)`.

        Raises ModelNotFoundError, InvalidTargetModelError or UnsafeArchiveError; leaves nothing behind
        on failure.
        """
        staging = self.root / f"{TEMP_PREFIX}{model_name}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            archive = staging / "archive"
            archive_bytes = self.source.fetch(target_model, archive)
            extracted = safe_extract(archive, staging / MODEL_SUBDIR, max_bytes=self.max_extracted_bytes)
            archive.unlink()
            final = self.root / model_name
            if final.exists():  # an earlier run's copy; ours is fresher
                self._discard(final)
            os.rename(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return Download(archive_bytes=archive_bytes, extracted_bytes=extracted)

    def remove(self, model_name: str) -> None:
        entry = self.root / model_name
        if entry.exists():
            self._discard(entry)

    def _discard(self, entry: Path) -> None:
        trash = self.root / f"{TRASH_PREFIX}{entry.name}-{uuid.uuid4().hex[:8]}"
        os.rename(entry, trash)
        shutil.rmtree(trash, ignore_errors=True)
