"""Which customers this instance forecasts, from which archive, and which instance it is.

- **With a fleet manifest** (`<models>/manifest.csv.gz`, `model.manifest`): exactly the customers it
  lists, each from the version that serves it (`<models>/<TargetModel>`), so an old run's archives in the
  same prefix are never forecast. A listed archive that is missing fails its customer.
- **Without one** (a checkpoint folder, an older layout): every `<customer>.tar.gz` under the folder.

Both are streamed (the manifest row by row, the folder by walking it), never held in memory, so a million
customers cost no more than a thousand. On several Processing instances:
- **FullyReplicated** models (the whole prefix on every instance): each keeps the customers whose id
  hashes to it, with the same rule training uses to split a channel (`training.config.host_of_customer`);
- **ShardedByS3Key** models (what `launch forecast` sends: a SageMaker manifest file listing the archives
  the fleet manifest names, dealt out by SageMaker): each forecasts every archive it was given, and a
  fleet manifest among them is ignored, since it names archives that other instances hold.
Either way every customer is forecast on exactly one instance.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fleetcast.model import manifest
from fleetcast.model.archive import ARCHIVE_SUFFIX, TEMP_PREFIX, customer_of
from fleetcast.paths import SHARDED_BY_S3_KEY, SageMakerPaths
from fleetcast.processing import input_distributions, read_processing_cluster
from fleetcast.training.config import host_of_customer

log = logging.getLogger(__name__)

# Outside a Processing job (a laptop, a test) there is one instance.
LOCAL_HOST = "local"


@dataclass(frozen=True)
class Cluster:
    host: str
    hosts: tuple[str, ...]
    models_sharded: bool = False  # SageMaker gave this instance only its share of the archives

    @property
    def shares_models(self) -> bool:
        """Every instance sees every archive, so each keeps only the customers it owns."""
        return len(self.hosts) > 1 and not self.models_sharded

    def owns(self, customer: str) -> bool:
        return not self.shares_models or host_of_customer(customer, self.hosts) == self.host


def processing_cluster(paths: SageMakerPaths, models: Path) -> Cluster:
    """This Processing instance, its peers and how the models reached it (`fleetcast.processing`); one
    LOCAL_HOST outside a job. Raises ProcessingConfigError for a config file that cannot be read."""
    cluster = read_processing_cluster(paths)
    if cluster.host is None:
        return Cluster(LOCAL_HOST, (LOCAL_HOST,))
    sharded = SHARDED_BY_S3_KEY in input_distributions(paths, [models])
    return Cluster(cluster.host, cluster.hosts, models_sharded=sharded)


def manifest_path(models: Path) -> Path | None:
    path = models / manifest.MANIFEST_NAME
    return path if path.is_file() else None


def fleet_manifest_for(models: Path, cluster: Cluster) -> Path | None:
    """The fleet manifest that says which customers to forecast, or None (every archive under `models`).
    With sharded models it is ignored, loudly: it names archives that other instances were given."""
    found = manifest_path(models)
    if found is not None and cluster.models_sharded:
        log.warning(
            "ignoring %s: the models input is %s, so the archives it names are spread over the instances",
            found, SHARDED_BY_S3_KEY,
        )  # fmt: skip
        return None
    return found


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


def iter_work(models: Path, cluster: Cluster, listed: Path | None) -> Iterator[tuple[str, str]]:
    """(customer, archive path) for every customer this instance forecasts: those the fleet manifest
    `listed` names (`fleet_manifest_for`), or without one every archive under `models`."""
    if cluster.models_sharded and not models.is_dir():
        return  # SageMaker may deal an instance no archive at all (fewer archives than instances)
    if listed is not None:
        for entry in manifest.read_file(listed):
            if cluster.owns(entry.customer):
                yield entry.customer, os.path.join(models, entry.target_model)
        return
    for path in iter_archives(models):
        customer = customer_of(path) or path
        if cluster.owns(customer):
            yield customer, path


def count_work(models: Path, cluster: Cluster, listed: Path | None) -> int:
    return sum(1 for _ in iter_work(models, cluster, listed))
