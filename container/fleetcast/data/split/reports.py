"""What a split run reports beside its data: the summary and the list of renamed customer ids.

They go to their own folder (the Processing job's second output), never among the customers' files: the
training channel holds customer data only, so `ShardedByS3Key` deals out nothing else. In a job with
several instances each instance's files carry its host name, since all upload to one S3 prefix.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from fleetcast.data.split.writers import write_atomic

if TYPE_CHECKING:
    from fleetcast.data.split.chunks import Counters
    from fleetcast.data.split.cluster import Instance
    from fleetcast.data.split.customers import CustomerTable

SUMMARY_FILE = "split_summary.json"
RENAMED_IDS_FILE = "split_renamed_ids.jsonl"
MAX_INLINE_RENAMED = 10_000  # beyond this, the summary points to the renamed-ids file only


def report_names(instance: Instance) -> tuple[str, str]:
    """This instance's (summary, renamed ids) file names: the host in them when the job has several."""
    if not instance.multi:
        return SUMMARY_FILE, RENAMED_IDS_FILE
    return _with_host(SUMMARY_FILE, instance.host), _with_host(RENAMED_IDS_FILE, instance.host)


def _with_host(name: str, host: str | None) -> str:
    stem, _, suffix = name.partition(".")
    return f"{stem}-{host}.{suffix}"


def summary(
    *,
    files: Sequence[Path],
    out: Path,
    instance: Instance,
    table: CustomerTable,
    counters: Counters,
    buckets: int,
    parts: int,
    spools: int,
    chunk_rows: int,
    times: tuple[float, float],  # wall and CPU seconds
    extras: Sequence[str] = (),
) -> dict:
    seconds, cpu_seconds = times
    renamed = len(table.raw_of_renamed)
    return {
        "format_version": 2,
        "layout": "buckets" if buckets else "customer_folders",
        "extra_columns": list(extras),
        "buckets": buckets or None,
        "parts_written": parts if buckets else None,
        "inputs": [str(p) for p in files],
        "output": str(out),
        "host": instance.host,
        "hosts": list(instance.hosts) or None,
        "input_sharded": instance.input_sharded if instance.multi else None,
        "rows_read": counters.rows_read,
        "rows_of_other_hosts": counters.rows_of_other_hosts,
        "rows_written": counters.rows_written,
        "rows_dropped": counters.rows_dropped,
        "dropped": counters.dropped,
        "customers": len(table.names),
        "duplicate_timestamps_kept": counters.duplicate_timestamps,
        "renamed_ids_count": renamed,
        "renamed_ids": table.renamed if 0 < renamed <= MAX_INLINE_RENAMED else None,
        "renamed_ids_file": report_names(instance)[1] if renamed else None,
        "spool_files": spools,
        "chunk_rows": chunk_rows,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "rows_per_second": round(counters.rows_read / max(seconds, 1e-9), 1),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_side_files(folder: Path, instance: Instance, table: CustomerTable, summary: dict) -> Path:
    """The renamed ids (when any), then the summary: written last, its presence means the split finished.

    Returns the summary's path. A renamed-ids file left by an earlier run into the same folder is removed
    when this run renamed nothing, so the folder never describes two runs.
    """
    summary_name, renamed_name = report_names(instance)
    folder.mkdir(parents=True, exist_ok=True)
    if table.raw_of_renamed:
        renamed_lines = "".join(
            json.dumps({"raw": raw, "name": name}, ensure_ascii=False) + "\n"
            for raw, name in table.renamed.items()
        )
        write_atomic(folder / renamed_name, renamed_lines)
    else:
        (folder / renamed_name).unlink(missing_ok=True)
    write_atomic(folder / summary_name, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return folder / summary_name
