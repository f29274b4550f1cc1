"""Input discovery and header checks: which files split reads, and whether each has the needed columns.

Every check here runs before any output exists, so a bad file fails the run without leaving anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fleetcast.data.layout import INPUT_COLUMNS
from fleetcast.data.split.errors import SplitError

GZIP_EXPANSION = 5.0  # rough size ratio of a CSV to its gzip, and line length, for sizing the spools
GZIP_LINE_BYTES = 32.0


def find_inputs(paths: Sequence[Path]) -> list[Path]:
    """Input files: files as given, folders searched recursively (hidden names skipped), in sorted order."""
    files: list[Path] = []
    for path in paths:
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and (p.name.endswith(".csv") or p.name.endswith(".csv.gz"))
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise SplitError(f"no *.csv or *.csv.gz files under {path}")
            files.extend(found)
        else:
            raise SplitError(f"input {path} does not exist")
    if not files:
        raise SplitError("no input files given")
    unique = {
        p.resolve(): p for p in reversed(files)
    }  # a file named twice (e.g. also via its folder) is read once
    return [p for p in files if unique.get(p.resolve()) is p]


# Compression from the name (.gz); a byte-order mark, as spreadsheets write one, is tolerated.
READ_OPTIONS = {"compression": "infer", "encoding": "utf-8-sig"}


@dataclass(frozen=True)
class Header:
    columns: list[str]  # as the file spells them
    required: dict[str, str]  # our name -> the file's name (blanks around names are tolerated)


def check_header(path: Path) -> Header:
    """The file's columns; fails with a message naming the missing column(s) before any output exists."""
    try:
        columns = pd.read_csv(path, nrows=0, **READ_OPTIONS).columns
    except pd.errors.EmptyDataError:
        raise SplitError(
            f"{path}: the file is empty; expected a header line {','.join(INPUT_COLUMNS)}"
        ) from None
    except (UnicodeDecodeError, pd.errors.ParserError, OSError) as exc:
        raise SplitError(f"{path}: cannot read the header: {exc}") from None
    present: dict[str, str] = {}
    for column in columns:
        present.setdefault(str(column).strip(), str(column))
    missing = [c for c in INPUT_COLUMNS if c not in present]
    if missing:
        found = ", ".join(str(c) for c in columns) or "(none)"
        raise SplitError(
            f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(found: {found}; the header must contain {','.join(INPUT_COLUMNS)})"
        )
    return Header(columns=[str(c) for c in columns], required={c: present[c] for c in INPUT_COLUMNS})


def estimate_rows(files: Sequence[Path]) -> int:
    """A rough row count from file sizes and the average line length of each file's start."""
    total = 0.0
    for path in files:
        size = path.stat().st_size
        if path.name.endswith(".gz"):
            total += size * GZIP_EXPANSION / GZIP_LINE_BYTES
            continue
        with open(path, "rb") as handle:
            head = handle.read(1 << 16)
        total += size / max(len(head) / max(head.count(b"\n"), 1), 1.0)
    return int(total)
