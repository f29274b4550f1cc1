"""Input discovery and header checks: which files split reads, and whether each has the needed columns.

Every check here runs before any output exists, so a bad file fails the run without leaving anything.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fleetcast.data.layout import INPUT_COLUMNS
from fleetcast.data.split.errors import SplitError

GZIP_EXPANSION = 5.0  # rough size ratio of a CSV to its gzip, and line length, for sizing the spools
GZIP_LINE_BYTES = 32.0


def find_inputs(paths: Sequence[Path], may_be_empty: bool = False) -> list[Path]:
    """Input files: files as given, folders searched recursively (hidden names skipped), in sorted order.

    `may_be_empty`: a folder without a CSV, or none at all, is nothing to do rather than an error (an
    instance of a job whose sharded input gave it no file)."""
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
            if not found and not may_be_empty:
                raise SplitError(f"no *.csv or *.csv.gz files under {path}")
            files.extend(found)
        elif not may_be_empty:
            raise SplitError(f"input {path} does not exist")
    if not files and not may_be_empty:
        raise SplitError("no input files given")
    unique = {
        p.resolve(): p for p in reversed(files)
    }  # a file named twice (e.g. also via its folder) is read once
    return [p for p in files if unique.get(p.resolve()) is p]


# Compression from the name (.gz); a byte-order mark, as spreadsheets write one, is tolerated.
READ_OPTIONS = {"compression": "infer", "encoding": "utf-8-sig"}
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".zip", ".tar")

# What reading a file can raise besides a parse error: a truncated or corrupt compressed file fails from
# inside the decompressor (EOFError, zlib.error, gzip.BadGzipFile, which is an OSError), at any chunk.
READ_ERRORS = (EOFError, zlib.error, OSError)


def read_failure(path: Path, exc: BaseException) -> str:
    """One clear line naming the file, for a file that cannot be read to its end."""
    what = (
        "corrupt or truncated compressed file"
        if path.name.endswith(COMPRESSED_SUFFIXES)
        else "unreadable file"
    )
    return f"{path}: {what} ({type(exc).__name__}: {exc}); the split stopped and wrote nothing"


@dataclass(frozen=True)
class Header:
    path: Path
    columns: list[str]  # as the file spells them
    present: dict[str, str]  # each column's name stripped of blanks -> the file's spelling (first one wins)

    @property
    def required(self) -> dict[str, str]:
        """Our name -> the file's name, for the columns every input must have."""
        return {c: self.present[c] for c in INPUT_COLUMNS}

    @property
    def others(self) -> list[str]:
        """The names (stripped) of the file's other columns, in its order."""
        return [name for name in self.present if name not in INPUT_COLUMNS]


def check_header(path: Path) -> Header:
    """The file's columns; fails with a message naming the missing column(s) before any output exists."""
    try:
        columns = pd.read_csv(path, nrows=0, **READ_OPTIONS).columns
    except pd.errors.EmptyDataError:
        raise SplitError(
            f"{path}: the file is empty; expected a header line {','.join(INPUT_COLUMNS)}"
        ) from None
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise SplitError(f"{path}: cannot read the header: {exc}") from None
    except READ_ERRORS as exc:
        raise SplitError(read_failure(path, exc)) from None
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
    return Header(path=path, columns=[str(c) for c in columns], present=present)


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
