"""Extra numeric columns (regressors such as temperature): split keeps them per customer and checks them."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pandas as pd
import pytest

from fleetcast.cli import main as cli_main
from fleetcast.data.layout import BUCKET_COLUMNS, CUSTOMER_COLUMNS, extra_columns
from fleetcast.data.split import split_main
from tests.support.split_files import summary_of
from tests.support.split_files import write_csv as write_csv_with

HEADER = "customer_id,timestamp,consumption,temperature,region,humidity"
write_csv = partial(write_csv_with, header=HEADER)
LINES = [
    "a,2022-01-02,2.5,-3.25,north,80",
    "a,2022-01-01,1,4.5,north,81",
    "b,2022-01-01,7,10,south,55.5",
]


def test_numeric_extra_columns_are_kept_per_customer_in_the_input_order(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert split_main([write_csv(tmp_path / "in.csv", LINES)], out) == 0
    assert (out / "a" / "data.csv").read_text() == (
        "timestamp,consumption,temperature,humidity\n"
        "2022-01-01 00:00:00,1.0,4.5,81.0\n"
        "2022-01-02 00:00:00,2.5,-3.25,80.0\n"
    )
    assert (out / "b" / "data.csv").read_text().splitlines()[1] == "2022-01-01 00:00:00,7.0,10.0,55.5"
    assert summary_of(out)["extra_columns"] == ["temperature", "humidity"]  # region is text: left out


def test_the_bucket_layout_carries_them(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert split_main([write_csv(tmp_path / "in.csv", LINES)], out, buckets=1) == 0
    (part,) = out.glob("part-*.csv")
    frame = pd.read_csv(part, dtype={"customer_id": str})
    assert list(frame.columns) == [*BUCKET_COLUMNS, "temperature", "humidity"]
    assert frame.values.tolist() == [
        ["a", "2022-01-01 00:00:00", 1.0, 4.5, 81.0],
        ["a", "2022-01-02 00:00:00", 2.5, -3.25, 80.0],
        ["b", "2022-01-01 00:00:00", 7.0, 10.0, 55.5],
    ]
    assert extra_columns(frame.columns, BUCKET_COLUMNS) == ("temperature", "humidity")


def test_keep_columns_limits_them_and_an_empty_list_keeps_none(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", LINES)
    assert split_main([source], tmp_path / "one", keep_columns="humidity") == 0
    assert (tmp_path / "one" / "a" / "data.csv").read_text().splitlines()[:2] == [
        "timestamp,consumption,humidity",
        "2022-01-01 00:00:00,1.0,81.0",
    ]
    assert split_main([source], tmp_path / "none", keep_columns="") == 0
    assert (tmp_path / "none" / "a" / "data.csv").read_text().splitlines()[0] == ",".join(CUSTOMER_COLUMNS)
    # A text column named explicitly is kept, and then every row of it must be a number.
    assert split_main([source], tmp_path / "text", keep_columns="region") == 1
    assert summary_of(tmp_path / "text")["dropped"]["kept_column_not_a_number"] == 3


def test_rows_without_a_number_in_a_kept_column_are_dropped_and_counted(tmp_path: Path) -> None:
    lines = [
        *LINES,
        "a,2022-01-03,3,,north,80",  # missing temperature
        "a,2022-01-04,3,warm,north,80",  # not a number
        "a,2022-01-05,3,inf,north,80",  # not finite
        "a,2022-01-06,3,1.5,north,NaN",  # missing humidity
        "b,2022-01-02,8,11,,56",  # missing region: not kept, so the row stays
    ]
    out = tmp_path / "out"
    assert split_main([write_csv(tmp_path / "in.csv", lines)], out, chunk_rows=3) == 0
    summary = summary_of(out)
    assert summary["extra_columns"] == ["temperature", "humidity"]  # chosen from the first rows' values
    assert summary["dropped"]["kept_column_not_a_number"] == 4
    assert summary["rows_written"] == 4
    assert len((out / "a" / "data.csv").read_text().splitlines()) == 3
    assert (out / "b" / "data.csv").read_text().splitlines()[-1] == "2022-01-02 00:00:00,8.0,11.0,56.0"


def test_a_kept_column_missing_from_a_file_fails_before_anything_is_written(tmp_path: Path, capsys) -> None:
    first = write_csv(tmp_path / "in" / "a.csv", LINES)
    second = write_csv(
        tmp_path / "in" / "b.csv",
        ["c,2022-01-01,1,5"],
        header="customer_id,timestamp,consumption,temperature",
    )
    out = tmp_path / "out"
    assert split_main([first, second], out, keep_columns="temperature,humidity") == 2
    assert "b.csv: missing column humidity named by --keep-columns" in capsys.readouterr().err
    assert not out.exists()
    # Not named: a column some files lack is left out, loudly, and the run goes on.
    assert split_main([first, second], out) == 0
    assert summary_of(out)["extra_columns"] == ["temperature"]
    assert (out / "c" / "data.csv").read_text().splitlines()[1] == "2022-01-01 00:00:00,1.0,5.0"


@pytest.mark.parametrize(
    ("keep", "message"),
    [
        ("consumption", "consumption is always kept"),
        ("bad name", "cannot be an extra column's name"),
        ("temperature,temperature", "names temperature more than once"),
    ],
)
def test_bad_keep_columns_are_refused(tmp_path: Path, capsys, keep: str, message: str) -> None:
    out = tmp_path / "out"
    assert split_main([write_csv(tmp_path / "in.csv", LINES)], out, keep_columns=keep) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_the_cli_takes_keep_columns(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", LINES)
    out = tmp_path / "out"
    assert (
        cli_main(["split", "--input", str(source), "--out", str(out), "--keep-columns", "temperature"]) == 0
    )
    assert summary_of(out)["extra_columns"] == ["temperature"]


def test_train_still_reads_consumption_from_files_with_extra_columns(tmp_path: Path) -> None:
    from fleetcast.training.inputs import iter_bucket_tasks, read_customer_file

    source = write_csv(tmp_path / "in.csv", LINES)
    assert split_main([source], tmp_path / "folders") == 0
    assert split_main([source], tmp_path / "buckets", buckets=1) == 0
    assert list(read_customer_file(tmp_path / "folders" / "a" / "data.csv").y) == [1.0, 2.5]
    (part,) = (tmp_path / "buckets").glob("part-*.csv")
    assert {task.customer: list(task.values) for task in iter_bucket_tasks(part)} == {
        "a": [1.0, 2.5],
        "b": [7.0],
    }


@pytest.mark.parametrize("buckets", [0, 2])
def test_generated_drivers_reach_trains_readers_unchanged(tmp_path: Path, buckets: int) -> None:
    """`generate --drivers` -> split -> the channel train reads: every customer's temperature, row for row."""
    from fleetcast.data.generate import generate_csv
    from fleetcast.training.inputs import iter_bucket_tasks, load_task_rows, read_customer_file

    raw = tmp_path / "raw.csv"
    generate_csv(out=raw, customers=5, seed=4, rows_per_customer=60, drivers=True)
    source = pd.read_csv(raw, dtype={"customer_id": str}).sort_values(["customer_id", "timestamp"])
    out = tmp_path / "out"
    assert split_main([raw], out, buckets=buckets) == 0
    assert summary_of(out)["extra_columns"] == ["temperature"]
    if buckets:
        tasks = [
            t for part in sorted(out.glob("part-*.csv")) for t in iter_bucket_tasks(part, ("temperature",))
        ]
        rows = {t.customer: load_task_rows(t) for t in tasks}
    else:
        rows = {
            p.name: read_customer_file(p / "data.csv", regressors=("temperature",)) for p in out.iterdir()
        }
    assert sorted(rows) == sorted(source["customer_id"].unique())
    for customer, group in source.groupby("customer_id"):
        assert list(rows[customer].y) == pytest.approx(list(group["consumption"]))
        assert list(rows[customer].regressors["temperature"]) == pytest.approx(list(group["temperature"]))
