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
    """This host's rows, gathered as results arrive and written sorted at the end of the job.

    Memory stays bounded however many customers a host has: every SPILL_ROWS rows are sorted and spilled to
    a run file in `spill_dir` (outside the synced checkpoints), and the end merges the runs as a stream.
    """

    SPILL_ROWS = 100_000

    def __init__(self, host: str, spill_dir: Path) -> None:
        self.name = manifest.host_manifest_name(host)
        self._spill_dir = spill_dir
        self._entries: list[ManifestEntry] = []
        self._spilled: list[Path] = []

    def add(self, entry: ManifestEntry | None) -> None:
        if entry is None:
            return
        self._entries.append(entry)
        if len(self._entries) >= self.SPILL_ROWS:
            self._entries.sort()
            spill = self._spill_dir / f".{self.name}.part-{len(self._spilled)}"
            manifest.write_manifest(spill, self._entries)
            self._spilled.append(spill)
            self._entries = []

    def write(self, checkpoints: Path, staging: Path) -> Path:
        """Write `manifest-<host>.csv.gz` into the checkpoint folder (staged, renamed in)."""
        self._entries.sort()
        counts: dict[str, int] = {}
        # Each customer is in one run only (a host handles a customer once), so the merge only interleaves.
        runs = [manifest.read_file(spill) for spill in self._spilled]
        rows = manifest.merge(self._entries, runs, counts) if runs else self._entries
        try:
            path, written = manifest.write_manifest(checkpoints / self.name, rows, staging)
        finally:
            for spill in self._spilled:
                spill.unlink(missing_ok=True)
        log.info("host manifest: %d customers in %s", written, path)
        return path
