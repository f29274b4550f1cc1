"""This instance's part of a Processing job that runs on several instances.

SageMaker starts the same container on every instance of a Processing job and tells each one who it is in
`/opt/ml/config/resourceconfig.json` (`current_host`, `hosts`), and how its inputs were distributed in
`/opt/ml/config/processingjobconfig.json` (each ProcessingInput's `LocalPath` and
`S3DataDistributionType`). Every instance uploads its own output folder to the same S3 prefix, so what two
instances write must never share a key:

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
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetcast.data.split.errors import SplitError
from fleetcast.paths import SageMakerPaths

log = logging.getLogger(__name__)

SHARDED_BY_S3_KEY = "ShardedByS3Key"  # ProcessingInput S3DataDistributionType values
FULLY_REPLICATED = "FullyReplicated"


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

    @property
    def counts_unattributed(self) -> bool:
        """Whether this instance counts rows that belong to no customer (one instance does)."""
        return self.owns("")


def owner_of(customer_id: str, hosts: Sequence[str]) -> str:
    """The host that splits a customer when every host sees every row: stable across runs and machines."""
    ordered = sorted(hosts)
    if not customer_id:
        return ordered[0]
    digest = hashlib.sha256(customer_id.encode("utf-8", "surrogatepass")).digest()
    return ordered[int.from_bytes(digest[:8], "big") % len(ordered)]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SplitError(f"cannot read the Processing job's {path}: {exc}") from None


def read_instance(paths: SageMakerPaths, inputs: Sequence[Path]) -> Instance:
    """This instance, from the Processing job's config files; a lone instance when there are none."""
    resource_file = paths.processing_resource_config_file
    if not resource_file.is_file():
        return Instance()
    resources = _read_json(resource_file)
    try:
        host = str(resources["current_host"])
        hosts = tuple(sorted(str(h) for h in resources["hosts"]))
    except (KeyError, TypeError) as exc:
        raise SplitError(f"{resource_file} lacks current_host/hosts ({exc})") from None
    if host not in hosts:
        raise SplitError(f"{resource_file}: current_host {host!r} is not in hosts {list(hosts)}")
    distributions = _input_distributions(paths, inputs)
    sharded = SHARDED_BY_S3_KEY in distributions
    if len(hosts) > 1 and not distributions:
        # Assuming replicated input would drop every customer another instance never sees; assuming
        # sharded input at worst splits a customer twice. Lose nothing.
        log.warning(
            "split: %d instances but no ProcessingInput in %s covers the input; treating it as %s",
            len(hosts),
            paths.processing_job_config_file,
            SHARDED_BY_S3_KEY,
        )
        sharded = True
    return Instance(host=host, hosts=hosts, input_sharded=sharded)


def _input_distributions(paths: SageMakerPaths, inputs: Sequence[Path]) -> set[str]:
    """The S3DataDistributionType of every ProcessingInput whose LocalPath holds or lies in an input."""
    job_file = paths.processing_job_config_file
    if not job_file.is_file():
        return set()
    job = _read_json(job_file)
    specs = job.get("ProcessingInputs") if isinstance(job, dict) else None
    found: set[str] = set()
    for spec in specs or []:
        source = spec.get("S3Input") or spec.get("DatasetDefinition") or {}
        local = source.get("LocalPath")
        if not local:
            continue
        where = paths.in_container(local).resolve()
        for path in inputs:
            given = path.resolve()
            if given == where or where in given.parents or given in where.parents:
                found.add(
                    source.get("S3DataDistributionType")
                    or source.get("DataDistributionType")
                    or FULLY_REPLICATED
                )
    return found
