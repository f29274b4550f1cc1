"""The training channel's file layout, shared by the split step that writes it and `train` that reads it.

- `<customer>/data.csv` with header `timestamp,consumption[,<extra>...]` (one customer per folder);
- flat `<customer>.csv` without a header (the AWS blog sample's splitter output; no extra columns);
- bucket files holding many whole customers, header `customer_id,timestamp,consumption[,<extra>...]`.

Extra columns are numeric series that drive consumption (regressors such as `temperature`). They always
follow the base columns, in the order split was given or found them, and every row has a finite value in
each (split drops rows that do not). A file's extras are whatever its header names after the base columns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

CUSTOMER_COLUMN = "customer_id"
TIME_COLUMN = "timestamp"
VALUE_COLUMN = "consumption"
INPUT_COLUMNS = (CUSTOMER_COLUMN, TIME_COLUMN, VALUE_COLUMN)  # what the fleet CSV and buckets must hold
CUSTOMER_COLUMNS = (TIME_COLUMN, VALUE_COLUMN)  # a one-customer file's base columns
BUCKET_COLUMNS = INPUT_COLUMNS  # a bucket file's base columns
CUSTOMER_FILE = "data.csv"

# An extra column's name: plain enough for a CSV header without quoting, a Prophet regressor name and a
# hyperparameter list (`regressors=temperature,humidity`).
EXTRA_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def customer_header(extras: Sequence[str] = ()) -> str:
    return ",".join((*CUSTOMER_COLUMNS, *extras)) + "\n"


def bucket_header(extras: Sequence[str] = ()) -> str:
    return ",".join((*BUCKET_COLUMNS, *extras)) + "\n"


def extra_columns(header: Sequence[str], base: Sequence[str]) -> tuple[str, ...]:
    """The extra columns a header names after `base` (CUSTOMER_COLUMNS or BUCKET_COLUMNS).

    Raises ValueError when the header does not start with the base columns or names a bad extra column.
    """
    names = [str(name).strip() for name in header]
    if tuple(names[: len(base)]) != tuple(base):
        raise ValueError(f"the header must start with {','.join(base)}, not {','.join(names)}")
    extras = tuple(names[len(base) :])
    bad = [name for name in extras if not EXTRA_COLUMN_NAME.fullmatch(name) or name in INPUT_COLUMNS]
    if bad or len(set(extras)) != len(extras):
        raise ValueError(f"bad or repeated extra column name(s) in {','.join(names)}: {', '.join(bad)}")
    return extras


CUSTOMER_HEADER = customer_header()
BUCKET_HEADER = bucket_header()

# The timestamps every stage can hold: datetime64[ns] (Prophet's and pandas' default resolution) spans
# 1677-09-21 to 2262-04-11; whole days inside it, as naive UTC, half-open [start, end). `split` drops a row
# outside it as a bad row, and `train` reads such a timestamp as missing.
TIMESTAMP_SPAN = ("1677-09-22", "2262-04-11")
