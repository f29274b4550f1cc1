"""A training job's outputs as the report reads them: every host's report rows and fleet summary.

The folder may be a job's extracted `output.tar.gz`, an `/opt/ml/output/data` folder, or a
`local-train` work dir with one `/opt/ml`-shaped root per host: report and summary files are found
anywhere under it. A host's summary is written twice (`model/` and `output/data/`); one per host is kept.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetcast.training.job import HOST_REPORT_PREFIX, HOST_SUMMARY_PREFIX


class ReportInputError(Exception):
    """The folder holds no training report to build from."""


@dataclass(frozen=True)
class TrainingOutput:
    rows: list[dict[str, str]]  # one per customer, every host's, as the CSV holds them
    summaries: dict[str, dict[str, Any]]  # fleet summary by host
    report_files: list[Path]


def _host_of(path: Path, prefix: str, suffix: str) -> str:
    return path.name[len(prefix) : -len(suffix)]


def _one_per_host(paths: list[Path], prefix: str, suffix: str) -> dict[str, Path]:
    chosen: dict[str, Path] = {}
    for path in sorted(paths):
        chosen.setdefault(_host_of(path, prefix, suffix), path)
    return chosen


def read_training_output(folder: Path) -> TrainingOutput:
    """Every host's report rows and summary under `folder`; ReportInputError when there is no report."""
    if not folder.is_dir():
        raise ReportInputError(f"{folder} is not a folder")
    reports = _one_per_host(list(folder.rglob(f"{HOST_REPORT_PREFIX}*.csv")), HOST_REPORT_PREFIX, ".csv")
    if not reports:
        raise ReportInputError(
            f"no {HOST_REPORT_PREFIX}<host>.csv under {folder}: is it a training job's output?"
        )
    rows: list[dict[str, str]] = []
    for path in reports.values():
        with open(path, newline="") as handle:
            rows.extend(csv.DictReader(handle))
    summaries = {}
    summary_files = _one_per_host(
        list(folder.rglob(f"{HOST_SUMMARY_PREFIX}*.json")), HOST_SUMMARY_PREFIX, ".json"
    )
    for host, path in summary_files.items():
        try:
            summaries[host] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # the rows carry every number the report needs; a summary adds throughput only
    return TrainingOutput(rows=rows, summaries=summaries, report_files=list(reports.values()))


def number(text: str | None) -> float | None:
    """A report cell as a finite float, or None when it is empty or not a number."""
    try:
        value = float(text) if text not in (None, "") else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None
