"""Customers whose worker died while fitting them, remembered across a resume of the same job.

A customer that kills its worker (the OOM killer, a crash in native code) is failed once and not retried in
the job. The checkpoints folder is the only state a resumed job gets back, so each host also records those
customers there, in `worker-deaths-<host>.json` (written whole via the staging directory and renamed in, so
it is never partial). A resumed job with the same model configuration fails them again at once instead of
meeting them again. The file is not an archive (`archive.customer_of` ignores it); deleting it from the
checkpoint prefix retries them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from fleetcast.model import archive

log = logging.getLogger("fleetcast.train")
JOURNAL_PREFIX = "worker-deaths-"


def journal_name(host: str) -> str:
    return f"{JOURNAL_PREFIX}{host}.json"


class DeathJournal:
    def __init__(self, checkpoints: Path, staging: Path, host: str, config_fingerprint: str) -> None:
        self._path = checkpoints / journal_name(host)
        self._staging = staging
        self._fingerprint = config_fingerprint
        self._mine: dict[str, str] = {}
        self.earlier: dict[str, str] = {}  # every host's, from before this job started
        for path in sorted(checkpoints.glob(f"{JOURNAL_PREFIX}*.json")):
            try:
                recorded = json.loads(path.read_text())
                if recorded.get("config_fingerprint") != config_fingerprint:
                    continue  # another configuration may well fit them
                customers = {str(c): str(r) for c, r in recorded["customers"].items()}
            except (OSError, ValueError, KeyError, AttributeError) as exc:
                log.warning("ignoring unreadable %s (%s)", path, exc)
                continue
            self.earlier.update(customers)
            if path == self._path:
                self._mine = customers

    def earlier_reason(self, customer: str) -> str | None:
        reason = self.earlier.get(customer)
        if reason is None:
            return None
        return (
            f"{reason} in an earlier attempt of this job; not retried "
            f"(delete {self._path.name} from the checkpoint location to retry)"
        )

    def record(self, customer: str, reason: str) -> None:
        self._mine[customer] = reason
        payload = json.dumps({"config_fingerprint": self._fingerprint, "customers": self._mine}, indent=1)
        archive.write_atomically(self._path, payload.encode(), self._staging, temp_suffix=".json")
