from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fleetcast.data.customer_ids import safe_customer_id
from fleetcast.training.inputs import (
    NoInputError,
    bucket_customer_count,
    clean_history,
    customer_of_file,
    iter_bucket_tasks,
    load_task_rows,
    read_customer_file,
    scan_channel,
)
from tests.helpers import customer_rows, write_bucket_layout, write_flat_layout, write_folder_layout


def test_folder_layout(tmp_path: Path):
    write_folder_layout(tmp_path, range(3))
    inventory = scan_channel(tmp_path)
    assert [customer_of_file(p) for p in inventory.files] == ["0", "1", "2"]
    assert inventory.buckets == []
    rows = read_customer_file(inventory.files[1])
    expected = customer_rows(1)
    assert len(rows) == len(expected)
    assert rows.y.tolist() == pytest.approx(expected["consumption"].tolist())
    assert str(rows.ds.dtype) == "datetime64[ns]"


def test_flat_headerless_layout_of_the_blog_sample(tmp_path: Path):
    write_flat_layout(tmp_path, range(2))
    inventory = scan_channel(tmp_path)
    assert [customer_of_file(p) for p in inventory.files] == ["0", "1"]
    rows = read_customer_file(inventory.files[0])
    assert len(rows) == len(customer_rows(0))  # the first row is data, not a header


def test_bucket_layout_holds_many_customers(tmp_path: Path):
    write_bucket_layout(tmp_path, range(5), buckets=2)
    inventory = scan_channel(tmp_path)
    assert inventory.files == []
    assert [p.name for p in inventory.buckets] == ["part-00000.csv", "part-00001.csv"]
    assert sum(bucket_customer_count(b) for b in inventory.buckets) == 5
    tasks = [t for b in inventory.buckets for t in iter_bucket_tasks(b)]
    assert sorted(t.customer for t in tasks) == ["0", "1", "2", "3", "4"]
    rows = load_task_rows(next(t for t in tasks if t.customer == "3"))
    assert rows.y.tolist() == pytest.approx(customer_rows(3)["consumption"].tolist())


def test_hidden_and_non_csv_files_are_ignored(tmp_path: Path):
    write_folder_layout(tmp_path, range(1))
    (tmp_path / "split_summary.json").write_text("{}")
    (tmp_path / ".tmp-partial.csv").write_text("garbage")
    assert len(scan_channel(tmp_path).files) == 1


def test_empty_or_missing_channel(tmp_path: Path):
    with pytest.raises(NoInputError, match="does not exist"):
        scan_channel(tmp_path / "nope")
    with pytest.raises(NoInputError, match="no customer CSV files"):
        scan_channel(tmp_path)


def test_clean_history_drops_and_counts_bad_rows(tmp_path: Path):
    path = tmp_path / "c" / "data.csv"
    path.parent.mkdir()
    path.write_text(
        "timestamp,consumption\n2022-01-03,3\nnot-a-date,1\n2022-01-01,1\n2022-01-02,abc\n2022-01-04,\n"
    )
    history, dropped = clean_history(read_customer_file(path))
    assert dropped == 3
    assert history.y.tolist() == [1.0, 3.0]
    assert np.all(np.diff(history.ds_ns) > 0)


@pytest.mark.parametrize("raw", ["../evil", "/abs", "a/b", ".", "..", ".hidden", "", "x" * 300])
def test_unsafe_customer_ids_become_safe_distinct_names(raw: str):
    safe = safe_customer_id(raw)
    assert "/" not in safe and not safe.startswith(".") and safe
    assert len(safe) <= 128
    assert safe != safe_customer_id(raw + "_")


def test_plain_ids_are_kept():
    assert safe_customer_id("customer_7.v2-A") == "customer_7.v2-A"
    assert safe_customer_id("a/b") != safe_customer_id("a_b")


def test_frequency_of_gappy_daily_and_hourly_data():
    from fleetcast.model.dates import infer_frequency

    days = pd.Series(
        pd.to_datetime(["2022-01-01", "2022-01-02", "2022-01-04", "2022-01-05", "2022-01-06", "2022-01-10"])
    )
    assert infer_frequency(days) == "D"
    assert infer_frequency(pd.Series(pd.date_range("2022-01-01", periods=50, freq="D"))) == "D"
    weekly_gaps = pd.Series(pd.to_datetime(["2022-01-01", "2022-01-08", "2022-01-22", "2022-01-29"]))
    assert infer_frequency(weekly_gaps) == "7D"
    hours = pd.Series(
        pd.to_datetime(["2022-01-01 00:00", "2022-01-01 01:00", "2022-01-01 03:00", "2022-01-01 04:00"])
    )
    assert infer_frequency(hours) == "h"


def test_a_customer_over_the_row_cap_fails_before_it_is_read_whole(tmp_path: Path):
    from dataclasses import replace

    from fleetcast.training.inputs import CustomerTask, TooManyRowsError

    write_folder_layout(tmp_path / "folder", range(1))  # 120 rows
    path = tmp_path / "folder" / "0" / "data.csv"
    assert len(read_customer_file(path, max_rows=120)) == 120
    with pytest.raises(TooManyRowsError, match=r"more than 119 rows, over max_rows_per_customer=119"):
        load_task_rows(CustomerTask("0", path=path, max_rows=119))
    # only cap + 1 rows are parsed: a broken tail beyond them is never reached
    path.write_text(path.read_text() + "garbage,\x00,,,\n" * 5)
    with pytest.raises(TooManyRowsError):
        read_customer_file(path, max_rows=50)

    write_bucket_layout(tmp_path / "buckets", range(2), buckets=1)
    task = next(iter_bucket_tasks(next((tmp_path / "buckets").glob("*.csv"))))
    assert len(load_task_rows(replace(task, max_rows=120))) == 120
    with pytest.raises(TooManyRowsError, match="the customer has 120 rows, over max_rows_per_customer=100"):
        load_task_rows(replace(task, max_rows=100))


def test_row_cap_from_memory(tmp_path: Path):
    from fleetcast.training import memory

    assert memory.rows_cap(8 * 2**30, workers=2) == int(8 * 2**30 * 0.8 / 2 / 4096)
    assert memory.rows_cap(10, workers=4) == 1
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:   1000 kB\n")
    assert memory.mem_available(meminfo) == 1000 * 1024
    assert memory.available_memory() is not None


FAST_PATH_FILES = {
    "dates": "timestamp,consumption\n2022-01-02,1.5\n2022-01-01,2\n2022-01-03,-0.25\n",
    "no-header": "2022-01-01,1\n2022-01-02,2.5e3\n",
    "times": "timestamp,consumption\n2022-01-01 00:30:00,1\n2022-01-01T01:00,2\n2022-01-01 01:30:00.25,3\n",
    "crlf": "timestamp,consumption\r\n2022-01-01,1\r\n2022-01-02,2\r\n",
    "extra-columns": "timestamp,consumption,temperature\n2022-01-01,1,20\n2022-01-02,2,21\n",
    "no-final-newline": "timestamp,consumption\n2022-01-01,1\n2022-01-02,2",
}
SLOW_PATH_FILES = {
    "zones": "timestamp,consumption\n2022-01-01T00:00:00Z,1\n2022-01-01T01:00:00+01:00,2\n",
    "bad-values": "timestamp,consumption\n2022-01-01,abc\n2022-01-02,\n2022-01-03,nan\n2022-01-04,1_000\n",
    "bad-dates": "timestamp,consumption\n20220101,1\n2022-13-01,2\nnot-a-date,3\n2022-01-04,4\n",
    "out-of-range": "timestamp,consumption\n9999-12-31,1\n0001-01-01,2\n2022-01-01,3\n",
    "quoted": 'timestamp,consumption\n"2022-01-01","1"\n"2022-01-02","2"\n',
    "short-row": "timestamp,consumption\n2022-01-01\n2022-01-02,2\n",
    "blank-lines": "timestamp,consumption\n2022-01-01,1\n\n2022-01-02,2\n",
}


@pytest.mark.parametrize("name", [*FAST_PATH_FILES, *SLOW_PATH_FILES])
def test_fast_reader_gives_the_rows_pandas_reads(tmp_path: Path, name: str):
    from fleetcast.training import inputs

    path = tmp_path / "data.csv"
    path.write_text({**FAST_PATH_FILES, **SLOW_PATH_FILES}[name], newline="")
    rows = read_customer_file(path)
    has_header = path.read_text().startswith("timestamp")
    reference = inputs._pandas_rows(path, has_header, 0)
    np.testing.assert_array_equal(rows.ds, reference.ds)
    np.testing.assert_array_equal(rows.y, reference.y)
    plain = inputs._plain_rows(path.read_text().splitlines()[1 if has_header else 0 :])
    assert (plain is not None) == (name in FAST_PATH_FILES), "the fast path took what it should not, or not"


def test_fast_reader_matches_pandas_on_many_random_files(tmp_path: Path):
    from fleetcast.training import inputs

    rng = np.random.default_rng(1)
    for index in range(40):
        stamps = pd.Timestamp("2000-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 10**17, 50)), unit="ns")
        style = index % 3
        text = [
            s.isoformat(sep=" " if style else "T") if style < 2 else s.strftime("%Y-%m-%d") for s in stamps
        ]
        values = [repr(float(v)) for v in rng.normal(0, 10.0 ** rng.integers(-8, 12), 50)]
        path = tmp_path / f"{index}.csv"
        path.write_text(
            "timestamp,consumption\n" + "".join(f"{t},{v}\n" for t, v in zip(text, values, strict=True))
        )
        rows, reference = read_customer_file(path), inputs._pandas_rows(path, True, 0)
        np.testing.assert_array_equal(rows.ds, reference.ds)
        np.testing.assert_array_equal(rows.y, reference.y)
