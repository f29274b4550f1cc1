"""Which archives this instance forecasts, and which instance it is.

Every `<customer>.tar.gz` under the models folder, found by walking it (never listed into memory, so a
million archives cost no more than a thousand). On SageMaker the launch command feeds the models prefix
with `ShardedByS3Key`, so each Processing instance receives its own share and walks only that; the
instance's name (from the Processing contract's resourceconfig.json) names its output file, so
instances never write the same key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from fleetcast.model.archive import ARCHIVE_SUFFIX, TEMP_PREFIX
from fleetcast.paths import SageMakerPaths

# Outside a Processing job (a laptop, a test) there is one instance.
LOCAL_HOST = "local"


def iter_archives(models: Path) -> Iterator[str]:
    """Paths of every archive under `models` (depth first, in directory order), temporary files skipped."""
    pending = [os.fspath(models)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif entry.name.endswith(ARCHIVE_SUFFIX) and not entry.name.startswith(TEMP_PREFIX):
                    yield entry.path


def count_archives(models: Path) -> int:
    return sum(1 for _ in iter_archives(models))


def processing_cluster(paths: SageMakerPaths) -> tuple[str, int]:
    """This Processing instance's name (algo-1, ...) and the instance count; (LOCAL_HOST, 1) outside one."""
    try:
        config = json.loads(paths.processing_resource_config_file.read_text())
    except (OSError, ValueError):
        return LOCAL_HOST, 1
    if not isinstance(config, dict) or not config.get("current_host"):
        return LOCAL_HOST, 1
    return str(config["current_host"]), max(len(config.get("hosts") or []), 1)
