"""Which extra columns a run keeps: numeric series such as `temperature` that drive consumption.

By default split keeps every extra column that is in every input file, has a name the channel layout
allows (`layout.EXTRA_COLUMN_NAME`) and is numeric: in a sample of each file's first rows, most of its
values (blanks and NaN markers aside) are numbers. A numeric column with a few stray words is still
numeric; those rows are bad rows. Split logs what it keeps and what it leaves out, and why.

`--keep-columns a,b` names them instead (an empty list keeps none): each must be in every file, or the
run fails before writing anything. A kept column's value must be a finite number on every row, or the
row is dropped and counted like other bad rows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pandas as pd

from fleetcast.data.layout import EXTRA_COLUMN_NAME, INPUT_COLUMNS
from fleetcast.data.split.errors import SplitError
from fleetcast.data.split.inputs import READ_ERRORS, READ_OPTIONS, Header, read_failure

log = logging.getLogger(__name__)

SAMPLE_ROWS = 1000  # rows of each file looked at to tell a numeric column from a text one
NUMERIC_SHARE = 0.5  # a column is numeric when more than this share of its sampled values are numbers
MISSING_MARKERS = frozenset({"", "nan", "na", "n/a", "null", "none"})  # blanks that say nothing of the type


def parse_keep_columns(text: str | None) -> list[str] | None:
    """`--keep-columns`' value: None (not given: choose), [] (keep none) or the names, in order."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise SplitError(f"--keep-columns names {', '.join(repeated)} more than once")
    return names


def choose_extra_columns(headers: Sequence[Header], keep: list[str] | None) -> tuple[str, ...]:
    """The extra columns every output row carries, in order; SplitError for a column that cannot be kept."""
    if keep is not None:
        return _named(headers, keep)
    if not headers:
        return ()
    first = headers[0].others
    everywhere = [name for name in first if all(name in h.present for h in headers)]
    partial = sorted({name for h in headers for name in h.others} - set(everywhere))
    if partial:
        log.warning(
            "split: not keeping column(s) %s: not in every input file (name them with --keep-columns "
            "only once every file has them)",
            ", ".join(partial),
        )
    badly_named = [name for name in everywhere if not EXTRA_COLUMN_NAME.fullmatch(name)]
    if badly_named:
        log.warning(
            "split: not keeping column(s) %s: an extra column's name must match %s",
            ", ".join(repr(n) for n in badly_named),
            EXTRA_COLUMN_NAME.pattern,
        )
    candidates = [name for name in everywhere if name not in badly_named]
    text = [name for name in candidates if not all(_looks_numeric(h, name) for h in headers)]
    if text:
        log.info("split: not keeping column(s) %s: not numbers", ", ".join(text))
    kept = tuple(name for name in candidates if name not in text)
    if kept:
        log.info(
            "split: keeping extra column(s) %s for every customer (--keep-columns limits them; "
            "--keep-columns '' keeps none); a row without a finite number in one is dropped",
            ", ".join(kept),
        )
    return kept


def _named(headers: Sequence[Header], keep: list[str]) -> tuple[str, ...]:
    for name in keep:
        if name in INPUT_COLUMNS:
            raise SplitError(f"--keep-columns: {name} is always kept; name only extra columns")
        if not EXTRA_COLUMN_NAME.fullmatch(name):
            raise SplitError(
                f"--keep-columns: {name!r} cannot be an extra column's name (it must match "
                f"{EXTRA_COLUMN_NAME.pattern})"
            )
    for header in headers:
        missing = [name for name in keep if name not in header.present]
        if missing:
            raise SplitError(
                f"{header.path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                f"named by --keep-columns (found: {', '.join(header.columns)})"
            )
    return tuple(keep)


def _looks_numeric(header: Header, name: str) -> bool:
    """Whether most of the column's values in the file's first rows are numbers (blanks aside)."""
    column = header.present[name]
    try:
        sample = pd.read_csv(
            header.path,
            usecols=[column],
            dtype=str,
            na_filter=False,
            nrows=SAMPLE_ROWS,
            on_bad_lines="skip",
            **READ_OPTIONS,
        )[column]
    except pd.errors.ParserError:
        return False
    except READ_ERRORS as exc:
        raise SplitError(read_failure(header.path, exc)) from None
    stripped = sample.str.strip()
    informative = stripped[~stripped.str.lower().isin(MISSING_MARKERS)]
    numbers = int(pd.to_numeric(informative, errors="coerce").notna().sum())
    return numbers > NUMERIC_SHARE * len(informative)
