"""This instance's part of a Processing job that runs on several instances.

SageMaker starts the same container on every instance of a Processing job and tells each one who it is,
and how its inputs were distributed (`fleetcast.processing` reads both files). Every instance uploads its
own output folder to the same S3 prefix, so what two instances write must never share a key:

- `ShardedByS3Key` input: each instance sees only its own raw files and splits all of them. This is right
  only when every customer lives in exactly one raw file (`launch process --shard-input` says so).
- `FullyReplicated` input (SageMaker's default): every instance sees every row, and splits only the
  customers it owns: a sha256 of the id over the sorted hosts, so each instance decides alone and the
  instances' customers are disjoint. Rows that cannot be attributed to a customer (an empty id, a malformed
  line) are counted by the first host only, so the instances' summaries add up to the input.

Bucket files carry the host in their name (`part-<host>-NNNNN.csv`) whenever the job has several
instances; customer folders are disjoint by the rules above. Without the config files (a run outside a
Processing job) the run is a single instance that owns everything.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetcast.data.split.errors import SplitError
from fleetcast.paths import SHARDED_BY_S3_KEY, SageMakerPaths
from fleetcast.processing import ProcessingConfigError, input_distributions, read_processing_cluster

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Instance:
    """Who this run is within its job: its host name, all hosts, and whether its input is sharded."""

    host: str | None = None  # None: not part of a multi-instance job
    hosts: tuple[str, ...] = ()  # sorted
    input_sharded: bool = False

    @property
    def multi(self) -> bool:
        return len(self.hosts) > 1

    @property
    def shares_input(self) -> bool:
        """Every instance sees every row, so each keeps only the customers it owns."""
        return self.multi and not self.input_sharded

    def owns(self, customer_id: str) -> bool:
        """Whether this instance splits `customer_id` (a stripped raw id; "" for rows without one)."""
        # Asked once per distinct id per chunk: a sha256 is cheaper to recompute than a million-entry cache.
        return not self.shares_input or owner_of(customer_id, self.hosts) == self.host


def owner_of(customer_id: str, hosts: Sequence[str]) -> str:
    """The host that splits a customer when every host sees every row: stable across runs and machines."""
    ordered = sorted(hosts)
    if not customer_id:
        return ordered[0]
    digest = hashlib.sha256(customer_id.encode("utf-8", "surrogatepass")).digest()
    return ordered[int.from_bytes(digest[:8], "big") % len(ordered)]


def read_instance(paths: SageMakerPaths, inputs: Sequence[Path]) -> Instance:
    """This instance, from the Processing job's config files; a lone instance when there are none."""
    try:
        cluster = read_processing_cluster(paths)
        distributions = input_distributions(paths, inputs)
    except ProcessingConfigError as exc:
        raise SplitError(str(exc)) from None
    if cluster.host is None:
        return Instance()
    sharded = SHARDED_BY_S3_KEY in distributions
    if len(cluster.hosts) > 1 and not distributions:
        # Assuming replicated input would drop every customer another instance never sees; assuming
        # sharded input at worst splits a customer twice. Lose nothing.
        log.warning(
            "split: %d instances but no ProcessingInput in %s covers the input; treating it as %s",
            len(cluster.hosts),
            paths.processing_job_config_file,
            SHARDED_BY_S3_KEY,
        )
        sharded = True
    return Instance(host=cluster.host, hosts=cluster.hosts, input_sharded=sharded)
