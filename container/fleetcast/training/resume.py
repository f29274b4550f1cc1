"""What a training run is and what it resumes from: its run id, the previous fleet manifest, and the
manifest file this host leaves behind.

- **The run id** names the run's folder below the models prefix (`<run>/<customer>.tar.gz`), which is also
  the job's checkpoint prefix. It is the `run_id` hyperparameter, else the job's name (SageMaker sets
  TRAINING_JOB_NAME in every container of a job, so all hosts agree, and a restarted spot job keeps it).
  A lone `docker run IMAGE train` without either gets `manual-<UTC time>`; several hosts without either
  cannot agree on a time, so the job fails and says to set `run_id`.
- **The previous manifest** arrives as the `manifest` input channel (one `manifest.csv.gz`). Only this
  host's customers' rows are kept, and a worker skips a customer whose row is still current. The
  checkpoint prefix is the run's own folder, so SageMaker restores nothing but this run's archives; the
  previous runs' archives are never downloaded.
- **The host manifest**, `manifest-<host>.csv.gz` in the checkpoint folder (so it lands in the run's
  folder), lists every customer this host trained or kept, sorted. `fleetcast manifest merge` publishes it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from fleetcast.model import manifest
from fleetcast.model.manifest import ManifestEntry, ManifestError
from fleetcast.paths import TRAINING_JOB_NAME_ENV, SageMakerPaths
from fleetcast.training.config import ConfigError, ResourceConfig, TrainingConfig, run_id

log = logging.getLogger("fleetcast.train")
MANUAL_RUN_PREFIX = "manual-"


def resolve_run_id(
    config: TrainingConfig, resources: ResourceConfig, environ: Mapping[str, str] | None = None
) -> str:
    """The run id (see the module docstring for the order), logged; ConfigError when hosts cannot agree."""
    run = _run_id(config, resources, os.environ if environ is None else environ)
    log.info("run %s: new models are %s/<customer>.tar.gz below the models prefix", run, run)
    return run


def _run_id(config: TrainingConfig, resources: ResourceConfig, environ: Mapping[str, str]) -> str:
    if config.job.run_id:
        return config.job.run_id
    job_name = environ.get(TRAINING_JOB_NAME_ENV, "").strip()
    if job_name:
        try:
            return run_id(job_name)
        except ValueError as exc:
            raise ConfigError(f"{TRAINING_JOB_NAME_ENV}={job_name!r} cannot name a run: {exc}") from None
    if len(resources.hosts) > 1:
        raise ConfigError(
            f"no run id: set the run_id hyperparameter ({TRAINING_JOB_NAME_ENV} is not set, and the "
            f"{len(resources.hosts)} hosts of this job must name their run alike)"
        )
    return MANUAL_RUN_PREFIX + datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def previous_manifest_file(paths: SageMakerPaths) -> Path | None:
    """The previous fleet manifest the job was given, or None; ConfigError when the channel is ambiguous."""
    channel = paths.manifest_channel_dir
    if not channel.is_dir():
        return None
    files = sorted(p for p in channel.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        return None
    if len(files) > 1:
        names = ", ".join(str(p.relative_to(channel)) for p in files[:5])
        raise ConfigError(f"the {channel.name} channel must hold one {manifest.MANIFEST_NAME}, found {names}")
    return files[0]


def load_previous(paths: SageMakerPaths, host_customers: Callable[[], set[str]]) -> dict[str, ManifestEntry]:
    """The previous manifest's rows for this host's customers, logged; {} without a manifest channel.
    `host_customers` is called only when there is a manifest (it may read the bucket files' ids)."""
    source = previous_manifest_file(paths)
    if source is None:
        channel = paths.manifest_channel_dir.name
        log.info("no previous manifest (no %s channel): every customer is trained", channel)
        return {}
    customers = host_customers()
    try:
        rows = manifest.load(manifest.read_file(source), wanted=customers)
    except ManifestError as exc:
        raise ConfigError(
            f"the previous manifest is unreadable: {exc}; fix it, or start the job without the "
            f"{paths.manifest_channel_dir.name} channel to retrain every customer"
        ) from None
    log.info(
        "previous manifest %s: %d of this host's %d customers have a version, kept where unchanged",
        source.name,
        len(rows),
        len(customers),
    )
    return rows


class HostManifest:
    """This host's rows, gathered as results arrive and written sorted at the end of the job."""

    def __init__(self, host: str) -> None:
        self.name = manifest.host_manifest_name(host)
        self._entries: list[ManifestEntry] = []

    def add(self, entry: ManifestEntry | None) -> None:
        if entry is not None:
            self._entries.append(entry)

    def __len__(self) -> int:
        return len(self._entries)

    def write(self, checkpoints: Path, staging: Path) -> Path:
        """Write `manifest-<host>.csv.gz` into the checkpoint folder (staged, renamed in)."""
        self._entries.sort()
        path, rows = manifest.write_manifest(checkpoints / self.name, self._entries, staging)
        log.info("host manifest: %d customers in %s", rows, path)
        return path
