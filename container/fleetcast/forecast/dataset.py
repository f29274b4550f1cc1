"""The forecast dataset: `customer,ds,yhat,yhat_lower,yhat_upper,model` rows in gzip-compressed CSV.

One file per Processing instance (`forecasts-<host>.csv.gz`), so instances never write the same key; a
job's output folder (or S3 prefix) holds the whole dataset. A file is a sequence of gzip members, one
per chunk of customers, each compressed where it was computed; any gzip reader (pandas, `zcat`) reads
them as one stream. The header is the first line of the first member. Intervals are empty for a model
trained without them (`uncertainty_samples=0`). Floats are written in Python's shortest exact form.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from fleetcast.forecast.predict import CustomerForecast
from fleetcast.model.compiled import iso_strings

COLUMNS = ("customer", "ds", "yhat", "yhat_lower", "yhat_upper", "model")
SUFFIX = ".csv.gz"
# Chunks are small (hundreds of customers); level 1 compresses CSV digits nearly as well as 6, 4x faster.
GZIP_LEVEL = 1


def dataset_file_name(host: str) -> str:
    return f"forecasts-{host}{SUFFIX}"


def header_member() -> bytes:
    return gzip.compress((",".join(COLUMNS) + "\n").encode(), compresslevel=GZIP_LEVEL, mtime=0)


def _column(values: np.ndarray | None, count: int) -> list[str]:
    return [""] * count if values is None else [repr(value) for value in values.tolist()]


def csv_lines(forecast: CustomerForecast) -> str:
    """The customer's rows, without a header."""
    count = len(forecast.ds)
    customer = _quoted(forecast.customer)
    model = _quoted(forecast.model)
    columns = zip(
        iso_strings(forecast.ds),
        _column(forecast.yhat, count),
        _column(forecast.yhat_lower, count),
        _column(forecast.yhat_upper, count),
        strict=True,
    )
    return "".join(f"{customer},{ds},{yhat},{lower},{upper},{model}\n" for ds, yhat, lower, upper in columns)


def compressed_chunk(forecasts: Iterable[CustomerForecast]) -> bytes:
    """One gzip member holding the rows of several customers."""
    return gzip.compress("".join(map(csv_lines, forecasts)).encode(), compresslevel=GZIP_LEVEL, mtime=0)


def _quoted(text: str) -> str:
    if not any(character in text for character in ',"\n\r'):
        return text
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([text])
    return buffer.getvalue()


def dataset_files(path: Path) -> list[Path]:
    """The dataset's files: `path` itself, or every `*.csv.gz` under a folder."""
    if path.is_dir():
        return sorted(p for p in path.rglob(f"*{SUFFIX}") if not p.name.startswith("."))
    return [path]


def read_rows(path: Path, customers: set[str] | None = None) -> Iterator[dict[str, str]]:
    """The dataset's rows (strings, as written), optionally only some customers', streamed."""
    for file in dataset_files(path):
        with gzip.open(file, "rt", newline="") as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise ValueError(f"{file}: columns {reader.fieldnames}, expected {','.join(COLUMNS)}")
            for row in reader:
                if customers is None or row["customer"] in customers:
                    yield row
