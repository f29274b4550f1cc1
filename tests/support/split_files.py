"""What the split tests share: writing a raw CSV and reading a run's summary from its reports folder."""

from __future__ import annotations

import json
from pathlib import Path

from fleetcast.data.layout import INPUT_COLUMNS
from fleetcast.data.split import SUMMARY_FILE, default_reports_dir

HEADER = ",".join(INPUT_COLUMNS)


def write_csv(path: Path, lines: list[str], header: str = HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def summary_of(out: Path) -> dict:
    """The summary of the run that wrote `out`, from its default reports folder."""
    return json.loads((default_reports_dir(out) / SUMMARY_FILE).read_text())
