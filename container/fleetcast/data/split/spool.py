"""The spool: valid rows parked on disk as packed binary records, grouped so a customer's rows share a file.

Each chunk opens, appends to and closes only the spools it touches: no file handle is held per customer,
which matters for a million customers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SPOOL_ROWS = 2_000_000  # rows per spool file on average: what pass 2 holds in memory
MAX_SPOOLS = 4096


# One valid row in a spool: customer number (index into the customer table), microseconds since the
# epoch (UTC, naive), value, then one float per kept extra column. Packed: 20 bytes a row, plus 8 per extra.
def record_dtype(extras: int = 0) -> np.dtype:
    fields = [("customer", "<i4"), ("time", "<i8"), ("value", "<f8")]
    return np.dtype(fields + [(extra_field(i), "<f8") for i in range(extras)])


def extra_field(index: int) -> str:
    return f"extra{index}"


RECORD = record_dtype()


class Spooler:
    """Appends records to spool files, opening each only while writing one chunk's share."""

    def __init__(self, work: Path, count: int, record: np.dtype = RECORD) -> None:
        self.paths = [work / f"spool-{i:05d}.bin" for i in range(count)]
        self.record = record

    def append(self, spools: np.ndarray, records: np.ndarray) -> None:
        order = np.argsort(spools, kind="stable")
        spools, records = spools[order], records[order]
        cuts = np.flatnonzero(np.diff(spools)) + 1
        for start, stop in zip(np.r_[0, cuts], np.r_[cuts, len(spools)], strict=True):
            with open(self.paths[spools[start]], "ab") as handle:
                handle.write(records[start:stop].tobytes())

    def load(self, index: int) -> np.ndarray:
        path = self.paths[index]
        if not path.exists():
            return np.empty(0, dtype=self.record)
        records = np.fromfile(path, dtype=self.record)
        path.unlink()  # free the disk as we go
        return records
