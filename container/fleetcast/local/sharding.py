"""Our stand-in for SageMaker's `ShardedByS3Key`: which host gets which S3 object.

AWS documents only that each instance receives about 1/N of the objects under the prefix, not the exact
assignment (the public blog calls it round-robin). We deal sorted keys round-robin, which gives every host
a fair share and is deterministic, so a local run is reproducible.

This splits S3 objects, which is all SageMaker can do. With `FullyReplicated` input every host gets every
object, and `train` itself splits the customers (training.config.host_of_customer); `local-train` can play
either (local/training.py).
"""

from __future__ import annotations

from collections.abc import Sequence


def host_names(count: int) -> list[str]:
    return [f"algo-{i}" for i in range(1, count + 1)]


def assign_round_robin(keys: Sequence[str], hosts: int) -> dict[str, list[str]]:
    """Host name -> its keys. Every key goes to exactly one host; hosts beyond the key count get none."""
    if hosts < 1:
        raise ValueError("need at least one host")
    shards: dict[str, list[str]] = {name: [] for name in host_names(hosts)}
    names = list(shards)
    for index, key in enumerate(sorted(keys)):
        shards[names[index % hosts]].append(key)
    return shards
