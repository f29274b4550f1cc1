"""The customer-id table: raw id -> customer number, safe name, and the spool its rows go to.

It grows with the number of customers (~250 bytes each), never with rows.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field

import numpy as np

from fleetcast.data.customer_ids import safe_customer_id
from fleetcast.data.split.errors import SplitError
from fleetcast.data.split.reports import RENAMED_IDS_FILE, SUMMARY_FILE

# Ids spelled like split's report files are renamed, as when the reports lived beside the customers.
RESERVED_NAMES = frozenset({SUMMARY_FILE, RENAMED_IDS_FILE})


def bucket_of(name: str, buckets: int) -> int:
    """The part file a customer goes to: stable across runs, processes and machines (not `hash()`)."""
    return zlib.crc32(name.encode("utf-8")) % buckets


def _spool_hash(name: str) -> int:
    # Independent of crc32, so the spools inside one bucket are evenly used.
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "little")


@dataclass
class CustomerTable:
    """Raw id -> customer number; each customer's safe name and spool. Grows with customers, not rows."""

    buckets: int  # 0: one folder per customer
    spools_per_bucket: int
    numbers: dict[str, int] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    spools: list[int] = field(default_factory=list)
    raw_of_renamed: dict[str, str] = field(default_factory=dict)  # safe name -> raw id, renamed ids only

    @property
    def renamed(self) -> dict[str, str]:
        """Raw id -> safe name, for the ids that had to change."""
        return {raw: name for name, raw in self.raw_of_renamed.items()}

    def spool_of(self, name: str) -> int:
        if self.buckets:
            sub = _spool_hash(name) % self.spools_per_bucket
            return bucket_of(name, self.buckets) * self.spools_per_bucket + sub
        return _spool_hash(name) % self.spools_per_bucket

    def lookup(self, raw_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Customer numbers and spools of distinct raw ids, registering new ones."""
        numbers = np.empty(len(raw_ids), dtype=np.int32)
        spools = np.empty(len(raw_ids), dtype=np.int32)
        for i, raw in enumerate(raw_ids.tolist()):
            number = self.numbers.get(raw)
            if number is None:
                number = self._register(raw)
            numbers[i] = number
            spools[i] = self.spools[number]
        return numbers, spools

    def _register(self, raw: str) -> int:
        name = safe_customer_id(raw)
        if name in RESERVED_NAMES:  # a folder with this name would take the place of split's own file
            digest = hashlib.blake2b(raw.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
            name = f"{name}--{digest}"
        # Two raw ids must never share a name, whatever the sanitiser's rules: check both directions
        # (a renamed id landing on a kept id, and a kept id landing on a renamed one), in any order.
        if name != raw:
            owner = self.raw_of_renamed.setdefault(name, raw)
            kept = self.numbers.get(name)
            if owner != raw or (kept is not None and self.names[kept] == name):
                other = owner if owner != raw else name
                raise SplitError(f"customer ids {other!r} and {raw!r} map to the same name {name!r}")
        elif name in self.raw_of_renamed:
            other = self.raw_of_renamed[name]
            raise SplitError(f"customer ids {other!r} and {raw!r} map to the same name {name!r}")
        number = len(self.names)
        self.numbers[raw] = number
        self.names.append(name)
        self.spools.append(self.spool_of(name))
        return number
