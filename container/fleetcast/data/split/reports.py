"""What a split run reports beside its data: the summary and the list of renamed customer ids."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from fleetcast.data.split.writers import write_atomic

if TYPE_CHECKING:
    from fleetcast.data.split.chunks import Counters
    from fleetcast.data.split.customers import CustomerTable

SUMMARY_FILE = "split_summary.json"
RENAMED_IDS_FILE = "split_renamed_ids.jsonl"
MAX_INLINE_RENAMED = 10_000  # beyond this, the summary points to the renamed-ids file only


def summary(
    files: Sequence[Path],
    table: CustomerTable,
    counters: Counters,
    buckets: int,
    parts: int,
    spools: int,
    chunk_rows: int,
    seconds: float,
) -> dict:
    renamed = len(table.raw_of_renamed)
    return {
        "format_version": 1,
        "layout": "buckets" if buckets else "customer_folders",
        "buckets": buckets or None,
        "parts_written": parts if buckets else None,
        "inputs": [str(p) for p in files],
        "rows_read": counters.rows_read,
        "rows_written": counters.rows_written,
        "rows_dropped": counters.rows_dropped,
        "dropped": counters.dropped,
        "customers": len(table.names),
        "duplicate_timestamps_kept": counters.duplicate_timestamps,
        "renamed_ids_count": renamed,
        "renamed_ids": table.renamed if 0 < renamed <= MAX_INLINE_RENAMED else None,
        "renamed_ids_file": RENAMED_IDS_FILE if renamed else None,
        "spool_files": spools,
        "chunk_rows": chunk_rows,
        "seconds": round(seconds, 3),
        "rows_per_second": round(counters.rows_read / max(seconds, 1e-9), 1),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_side_files(folder: Path, table: CustomerTable, summary: dict) -> None:
    """The renamed ids (when any), then the summary: written last, its presence means the split finished."""
    if table.raw_of_renamed:
        renamed_lines = "".join(
            json.dumps({"raw": raw, "name": name}, ensure_ascii=False) + "\n"
            for raw, name in table.renamed.items()
        )
        write_atomic(folder / RENAMED_IDS_FILE, renamed_lines)
    write_atomic(folder / SUMMARY_FILE, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
