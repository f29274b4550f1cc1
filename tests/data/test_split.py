"""`fleetcast split`: the Processing step, on real files, through its function and through the CLI."""

from __future__ import annotations

import gzip
import json
import random
import zlib
from pathlib import Path

import pandas as pd
import pytest

from fleetcast.cli import main as cli_main
from fleetcast.data.customer_ids import safe_customer_id
from fleetcast.data.generate import generate_csv
from fleetcast.data.split import (
    DROP_REASONS,
    RENAMED_IDS_FILE,
    SUMMARY_FILE,
    WORK_DIR,
    default_reports_dir,
    split,
    split_main,
)
from tests.support.split_files import HEADER, summary_of, write_csv


def customer_rows(out: Path, name: str) -> list[tuple[str, float]]:
    text = (out / name / "data.csv").read_text().splitlines()
    assert text[0] == "timestamp,consumption"
    return [(t, float(v)) for t, v in (line.split(",") for line in text[1:])]


def expected_by_customer(source: pd.DataFrame) -> dict[str, list[tuple[str, float]]]:
    """What split must write for a clean input: each customer's rows sorted by time, ISO seconds."""
    frame = source.assign(ts=pd.to_datetime(source["timestamp"]))
    frame = frame.sort_values(["customer_id", "ts"], kind="stable")
    return {
        str(customer): [
            (t.strftime("%Y-%m-%d %H:%M:%S"), float(v))
            for t, v in zip(group["ts"], group["consumption"], strict=True)
        ]
        for customer, group in frame.groupby("customer_id", sort=False)
    }


def all_output_files(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*"))


@pytest.fixture(scope="module")
def fleet_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fleet") / "fleet.csv"
    generate_csv(out=path, customers=25, seed=7, rows_per_customer=40)
    return path


@pytest.fixture(scope="module")
def fleet_frame(fleet_csv: Path) -> pd.DataFrame:
    return pd.read_csv(fleet_csv, dtype={"customer_id": str})


# ------------------------------------------------------------------------------------------- header


def test_missing_column_is_named_and_nothing_is_written(tmp_path: Path, capsys) -> None:
    source = write_csv(tmp_path / "in.csv", ["1,2022-01-01,3"], header="customer_id,time,consumption")
    out = tmp_path / "out"
    assert split_main([source], out) == 2
    err = capsys.readouterr().err
    assert "missing column timestamp" in err
    assert "customer_id,timestamp,consumption" in err
    assert not out.exists() or not any(out.iterdir())


def test_several_missing_columns_are_all_named(tmp_path: Path, capsys) -> None:
    source = write_csv(tmp_path / "in.csv", ["1,2"], header="id,timestamp")
    assert split_main([source], tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "missing columns customer_id, consumption" in err
    assert "found: id, timestamp" in err


def test_bad_header_in_a_later_file_fails_before_any_output(tmp_path: Path, capsys) -> None:
    good = write_csv(tmp_path / "a.csv", ["1,2022-01-01,3"])
    bad = write_csv(tmp_path / "b.csv", ["1,2022-01-01"], header="customer_id,timestamp")
    out = tmp_path / "out"
    assert split_main([good, bad], out) == 2
    assert "b.csv: missing column consumption" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_empty_file_is_a_clear_error(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert split_main([empty], tmp_path / "out") == 2
    assert "empty.csv: the file is empty" in capsys.readouterr().err


def test_extra_columns_are_ignored_and_column_order_is_free(tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "in.csv",
        ["5.5,north,7,2022-01-02", "1.25,south,7,2022-01-01"],
        header="consumption,region,customer_id,timestamp",
    )
    out = tmp_path / "out"
    assert split_main([source], out) == 0
    assert customer_rows(out, "7") == [("2022-01-01 00:00:00", 1.25), ("2022-01-02 00:00:00", 5.5)]


def test_byte_order_mark_and_blanks_around_column_names_are_tolerated(tmp_path: Path) -> None:
    source = tmp_path / "excel.csv"
    source.write_bytes("\ufeffcustomer_id, timestamp ,consumption\r\n9,2022-01-01,-0.0\r\n".encode())
    out = tmp_path / "out"
    assert split_main([source], out) == 0
    assert (out / "9" / "data.csv").read_text() == "timestamp,consumption\n2022-01-01 00:00:00,0.0\n"


def test_a_file_named_twice_is_read_once(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in" / "a.csv", ["a,2022-01-01,1"])
    out = tmp_path / "out"
    assert split_main([source, tmp_path / "in"], out) == 0
    assert summary_of(out)["rows_read"] == 1


# -------------------------------------------------------------------------------------------- drops


def test_dropped_rows_are_counted_by_reason_and_good_rows_kept(tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "in.csv",
        [
            "a,2022-01-01,1",  # good
            "a,2022-01-02,2.5",  # good
            ",2022-01-03,1",  # empty id
            "   ,2022-01-03,1",  # blank id
            "a,not a date,1",  # bad timestamp
            "a,,1",  # empty timestamp
            "a,2022-02-30,1",  # impossible date
            "a,9999-12-31,1",  # beyond datetime64[ns]
            "a,0001-01-01T00:00:00Z,1",  # before it
            "a,2262-04-11,1",  # the first day past the span train can read
            "a,2022-01-04,abc",  # not a number
            "a,2022-01-05,",  # empty value
            "a,2022-01-06,nan",  # NaN
            "a,2022-01-06,inf",  # not finite
            "a,2022-01-07",  # missing field: no value
            "a,2022-01-08,-0.5",  # negative
            "b,2022-01-09,1,999",  # too many fields
            "b,2022-01-10,0",  # good (zero is fine)
            ",nope,-1",  # several problems: counted once, under the first reason
        ],
    )
    out = tmp_path / "out"
    assert split_main([source], out, chunk_rows=4) == 0
    summary = summary_of(out)
    assert summary["dropped"] == {
        "malformed_line": 1,
        "empty_customer_id": 3,
        "bad_timestamp": 3,
        "timestamp_out_of_range": 3,
        "consumption_not_a_number": 5,
        "negative_consumption": 1,
        "kept_column_not_a_number": 0,
    }
    assert set(summary["dropped"]) == set(DROP_REASONS)
    assert summary["rows_read"] == 19
    assert summary["rows_written"] == 3
    assert summary["rows_dropped"] == 16
    assert summary["customers"] == 2
    assert customer_rows(out, "a") == [("2022-01-01 00:00:00", 1.0), ("2022-01-02 00:00:00", 2.5)]
    assert customer_rows(out, "b") == [("2022-01-10 00:00:00", 0.0)]


def test_timestamps_train_can_hold_are_kept_up_to_the_edges_of_the_span(tmp_path: Path) -> None:
    from fleetcast.training.inputs import read_customer_file

    source = write_csv(
        tmp_path / "in.csv",
        [
            "a,1677-09-21 23:59:59,1",  # out
            "a,1677-09-22,2",  # the first instant in
            "a,2262-04-10 23:59:59.999,3",  # the last second in (sub-second truncated)
            "a,2262-04-11,4",  # out
            "a,2262-04-10T23:00:00-02:00,5",  # 2262-04-11 01:00 UTC: out
        ],
    )
    out = tmp_path / "out"
    assert split_main([source], out) == 0
    assert customer_rows(out, "a") == [("1677-09-22 00:00:00", 2.0), ("2262-04-10 23:59:59", 3.0)]
    assert summary_of(out)["dropped"]["timestamp_out_of_range"] == 3
    rows = read_customer_file(out / "a" / "data.csv")  # train reads every row split kept
    assert not pd.isna(rows.ds).any() and list(rows.y) == [2.0, 3.0]


def test_drops_are_logged_for_a_person(tmp_path: Path, caplog) -> None:
    source = write_csv(tmp_path / "in.csv", ["a,2022-01-01,1", "a,2022-01-02,-4", "a,x,1"])
    with caplog.at_level("INFO", logger="fleetcast.data.split"):
        assert split_main([source], tmp_path / "out") == 0
    text = caplog.text
    assert "dropped 2 rows: bad_timestamp 1, negative_consumption 1" in text
    assert "split done: 1 customers, 1 rows written, 2 dropped of 3 read" in text
    assert "rows/s" in text


def test_a_customer_whose_rows_are_all_bad_is_not_a_customer(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", ["good,2022-01-01,1", "bad,2022-01-01,-1", "bad,xx,1"])
    out = tmp_path / "out"
    assert split_main([source], out) == 0
    assert summary_of(out)["customers"] == 1
    assert not (out / "bad").exists()


def test_no_valid_row_fails_the_job_but_still_reports(tmp_path: Path, capsys) -> None:
    source = write_csv(tmp_path / "in.csv", ["a,xx,1", ",2022-01-01,1"])
    out = tmp_path / "out"
    assert split_main([source], out) == 1
    assert "no valid rows" in capsys.readouterr().err
    assert summary_of(out)["rows_dropped"] == 2


# ------------------------------------------------------------------------------------ times, values


def test_rows_are_sorted_by_time_and_timestamps_normalised(tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "in.csv",
        [
            "c,2022-01-03T12:00:00+02:00,3",  # tz-aware: converted to UTC
            "c,2022-01-01,1",  # date only
            "c,2022-01-03 09:30:00Z,2",
            "c,2022-01-02 23:59:59.750,1.5",  # sub-second: truncated
            "c, 2022-01-05 ,5",  # blanks around the timestamp
            "007,2022-01-01,7",  # leading zeros kept
            " 007 ,2022-01-02,8",  # blanks around an id
        ],
    )
    out = tmp_path / "out"
    assert split_main([source], out, chunk_rows=2) == 0
    assert customer_rows(out, "c") == [
        ("2022-01-01 00:00:00", 1.0),
        ("2022-01-02 23:59:59", 1.5),
        ("2022-01-03 09:30:00", 2.0),
        ("2022-01-03 10:00:00", 3.0),
        ("2022-01-05 00:00:00", 5.0),
    ]
    assert customer_rows(out, "007") == [("2022-01-01 00:00:00", 7.0), ("2022-01-02 00:00:00", 8.0)]


def test_duplicate_timestamps_are_kept_and_counted(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", ["a,2022-01-01,1", "a,2022-01-01,2", "a,2022-01-02,3"])
    out = tmp_path / "out"
    assert split_main([source], out) == 0
    assert [v for _, v in customer_rows(out, "a")] == [1.0, 2.0, 3.0]  # ties keep input order
    assert summary_of(out)["duplicate_timestamps_kept"] == 1


# ---------------------------------------------------------------------------- many files and chunks


def _shuffled_parts(frame: pd.DataFrame, folder: Path, parts: int, seed: int = 3) -> list[Path]:
    lines = [f"{c},{t},{v}" for c, t, v in frame.itertuples(index=False)]
    random.Random(seed).shuffle(lines)
    paths = []
    for i in range(parts):
        paths.append(write_csv(folder / f"in-{i}.csv", lines[i::parts]))
    return paths


def test_customers_spread_over_files_and_chunks_are_reassembled(
    tmp_path: Path, fleet_frame: pd.DataFrame
) -> None:
    inputs = _shuffled_parts(fleet_frame, tmp_path / "in", parts=3)
    out = tmp_path / "out"
    assert split_main(inputs, out, chunk_rows=7) == 0  # ~140 chunks: every customer in many of them
    expected = expected_by_customer(fleet_frame)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(expected)
    for customer, rows in expected.items():
        assert customer_rows(out, customer) == rows
    summary = summary_of(out)
    assert summary["rows_read"] == summary["rows_written"] == len(fleet_frame)
    assert summary["customers"] == 25
    assert summary["inputs"] == [str(p) for p in inputs]


def test_many_spool_files_give_the_same_output(tmp_path: Path, fleet_frame: pd.DataFrame) -> None:
    inputs = _shuffled_parts(fleet_frame, tmp_path / "in", parts=2)
    result = split(inputs, tmp_path / "out", chunk_rows=50, spool_rows=60)  # ~17 spools
    assert result.summary["spool_files"] > 5
    for customer, rows in expected_by_customer(fleet_frame).items():
        assert customer_rows(tmp_path / "out", customer) == rows


def test_folders_are_searched_recursively_including_gzip(tmp_path: Path, fleet_frame: pd.DataFrame) -> None:
    inputs = _shuffled_parts(fleet_frame, tmp_path / "in" / "nested", parts=2)
    packed = inputs[1].with_name("in-1.csv.gz")
    with gzip.open(packed, "wb") as handle:
        handle.write(inputs[1].read_bytes())
    inputs[1].unlink()
    (tmp_path / "in" / "notes.txt").write_text("not data")
    (tmp_path / "in" / ".hidden.csv").write_text("garbage without the header")
    out = tmp_path / "out"
    assert split_main([tmp_path / "in"], out) == 0
    summary = summary_of(out)
    assert summary["rows_written"] == len(fleet_frame)
    assert sorted(Path(p).name for p in summary["inputs"]) == ["in-0.csv", "in-1.csv.gz"]


def test_missing_input_and_empty_folder_are_clear_errors(tmp_path: Path, capsys) -> None:
    assert split_main([tmp_path / "nope.csv"], tmp_path / "out") == 2
    assert "nope.csv does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert split_main([tmp_path / "empty"], tmp_path / "out") == 2
    assert "no *.csv or *.csv.gz files under" in capsys.readouterr().err


def test_non_empty_output_folder_is_refused(tmp_path: Path, capsys) -> None:
    source = write_csv(tmp_path / "in.csv", ["a,2022-01-01,1"])
    out = tmp_path / "out"
    (out / "stale-customer").mkdir(parents=True)
    assert split_main([source], out) == 2
    assert "is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["stale-customer"]


def _gzip_of(path: Path, text: str) -> Path:
    with gzip.open(path, "wb") as handle:
        handle.write(text.encode())
    return path


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
@pytest.mark.parametrize("out_existed", [False, True])
def test_a_damaged_compressed_input_fails_clearly_and_leaves_the_output_as_it_was(
    tmp_path: Path, fleet_csv: Path, capsys, damage: str, out_existed: bool
) -> None:
    text = fleet_csv.read_text()
    rows = text.splitlines()
    body = "\n".join(rows + [f"z{i},2022-01-01,{i}" for i in range(20_000)]) + "\n"  # many gzip blocks
    (tmp_path / "in").mkdir()
    damaged = _gzip_of(tmp_path / "in" / "b.csv.gz", body)
    packed = damaged.read_bytes()
    if damage == "truncated":
        damaged.write_bytes(packed[: len(packed) // 2])
    else:
        middle = len(packed) // 2
        damaged.write_bytes(packed[:middle] + bytes(range(256)) * 4 + packed[middle + 1024 :])
    good = tmp_path / "in" / "a.csv"  # read first: its rows are spooled before the damage is met
    good.write_text(text)
    out = tmp_path / "out"
    if out_existed:
        out.mkdir()
    assert split_main([good, damaged], out, chunk_rows=1000) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "b.csv.gz: corrupt or truncated compressed file" in err[0], err
    assert "Traceback" not in "\n".join(err)
    assert (sorted(out.iterdir()) == []) if out_existed else not out.exists()
    assert not default_reports_dir(out).exists()


@pytest.mark.parametrize(
    ("when", "buckets"),
    [("input file(s)", "0"), ("rows from 1 file(s)", "3")],
    ids=["while-reading", "while-writing-buckets"],
)
def test_a_run_stopped_by_sigterm_leaves_the_output_as_it_was(
    tmp_path: Path, when: str, buckets: str
) -> None:
    """SageMaker stops a job with SIGTERM: the run exits 143 and leaves no half-written output behind.

    While reading, a signal lands inside pandas' C tokenizer as often as not: the run must still stop
    cleanly (a handler that raised there gave a TypeError traceback and exit code 1)."""
    import signal
    import subprocess
    import sys
    import time

    source = tmp_path / "big.csv"
    with open(source, "w") as handle:  # ~1M rows: seconds of work left when the signal comes
        handle.write(HEADER + "\n")
        for day in range(1, 29):
            handle.write("".join(f"c{c},2022-02-{day:02d},{c % 97}.5\n" for c in range(36_000)))
    out = tmp_path / "out"
    out.mkdir()
    argv = [sys.executable, "-m", "fleetcast.cli", "split", "--input", str(source), "--out", str(out)]
    argv += ["--buckets", buckets, "--chunk-rows", "100000"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    for line in process.stdout:  # the run logs its plan before reading, its counts before writing
        if when in line:
            break
    # Again and again until it exits: every signal must land harmlessly, wherever the run is. Once the
    # run has unwound, the default handler is back and a late signal ends the process (-SIGTERM).
    while process.poll() is None:
        process.send_signal(signal.SIGTERM)
        time.sleep(0.005)
    rest = process.stdout.read()
    assert process.wait(timeout=60) in (128 + signal.SIGTERM, -signal.SIGTERM), rest
    assert "Traceback" not in rest
    if list(out.iterdir()):  # the machine was slow and the run had finished before the first signal
        left = sorted(str(p.relative_to(out)) for p in out.iterdir())[:10]
        assert (default_reports_dir(out) / SUMMARY_FILE).is_file(), f"output without its summary: {left}"
        assert summary_of(out)["rows_written"] == 28 * 36_000  # then the output is whole, never half
    else:
        assert not default_reports_dir(out).exists()


def test_the_reports_never_go_inside_the_output(tmp_path: Path, capsys) -> None:
    source = write_csv(tmp_path / "in.csv", ["a,2022-01-01,1"])
    out = tmp_path / "out"
    assert split_main([source], out, reports=out / "reports") == 2
    assert "must be apart" in capsys.readouterr().err
    assert not out.exists()
    assert split_main([source], out, reports=tmp_path / "elsewhere") == 0
    assert sorted(p.name for p in out.iterdir()) == ["a"]  # the channel: customer data only
    assert (tmp_path / "elsewhere" / SUMMARY_FILE).is_file()


def test_a_reports_folder_that_cannot_be_made_fails_before_any_work(tmp_path: Path, capsys) -> None:
    source = write_csv(tmp_path / "in.csv", ["a,2022-01-01,1"])
    (tmp_path / "a-file").write_text("")
    out = tmp_path / "new" / "out"
    assert split_main([source], out, reports=tmp_path / "a-file" / "reports") == 2
    assert "cannot create the reports folder" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()  # the folders this run made are gone again


def test_local_train_deals_out_only_customer_data(tmp_path: Path) -> None:
    from fleetcast.local.training import list_objects

    source = write_csv(tmp_path / "in.csv", ["a,2022-01-01,1", '"x/y",2022-01-01,2'])  # one id renamed
    assert split_main([source], tmp_path / "one") == 0
    assert split_main([source], tmp_path / "two", buckets=2) == 0
    assert list_objects(tmp_path / "one") == ["a/data.csv", f"{safe_customer_id('x/y')}/data.csv"]
    assert all(key.startswith("part-") and key.endswith(".csv") for key in list_objects(tmp_path / "two"))


# --------------------------------------------------------------------------------------- unsafe ids

UNSAFE_IDS = [
    "../evil",
    "../../etc/passwd",
    "/abs",
    "a/b",
    ".",
    "..",
    ".hidden",
    "a\\b",
    "é",
    "x" * 300,
    "a b",
]


def test_unsafe_ids_never_escape_the_output_folder(tmp_path: Path) -> None:
    lines = [f'"{raw}",2022-01-0{i % 9 + 1},{i}' for i, raw in enumerate(UNSAFE_IDS)]
    source = write_csv(tmp_path / "work" / "in.csv", lines)
    out = tmp_path / "work" / "out"
    ours = (out, default_reports_dir(out))

    def outside() -> list[Path]:
        return sorted(
            p.relative_to(tmp_path) for p in tmp_path.rglob("*") if not any(p.is_relative_to(o) for o in ours)
        )

    before = outside()
    assert split_main([source], out) == 0
    after = outside()
    assert after == before  # nothing was written outside `out` and its reports
    summary = summary_of(out)
    renamed = summary["renamed_ids"]
    assert set(renamed) == set(UNSAFE_IDS)
    for i, raw in enumerate(UNSAFE_IDS):
        name = renamed[raw]
        assert name == safe_customer_id(raw)
        assert (out / name).resolve().parent == out.resolve()
        assert not name.startswith(".") and len(name) < 100
        assert customer_rows(out, name) == [(f"2022-01-0{i % 9 + 1} 00:00:00", float(i))]
    renamed_file = default_reports_dir(out) / RENAMED_IDS_FILE
    mapping = [json.loads(line) for line in renamed_file.read_text().splitlines()]
    assert {m["raw"]: m["name"] for m in mapping} == renamed


def test_safe_ids_are_kept_and_the_summary_has_no_mapping(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", ["cust-1.a_B,2022-01-01,1", "42,2022-01-01,1"])
    out = tmp_path / "out"
    assert split_main([source], out) == 0
    assert (out / "cust-1.a_B" / "data.csv").is_file()
    assert summary_of(out)["renamed_ids"] is None
    assert not (default_reports_dir(out) / RENAMED_IDS_FILE).exists()


def test_ids_that_sanitise_alike_never_collide(tmp_path: Path) -> None:
    raws = ["a/b", "a_b", "a?b", "a b", "a\\b", "./a_b", "a_b_"]
    lines = [f'"{raw}",2022-01-01,{i}' for i, raw in enumerate(raws)]
    out = tmp_path / "out"
    assert split_main([write_csv(tmp_path / "in.csv", lines)], out) == 0
    names = [safe_customer_id(raw) for raw in raws]
    assert len(set(names)) == len(raws)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(names)
    for i, name in enumerate(names):
        assert customer_rows(out, name) == [("2022-01-01 00:00:00", float(i))]


@pytest.mark.parametrize("order", ["renamed first", "look-alike first"])
def test_an_id_spelled_like_another_ids_safe_name_is_never_merged(tmp_path: Path, capsys, order: str) -> None:
    look_alike = safe_customer_id("a/b")  # a raw id that is exactly the name "a/b" gets
    raws = ["a/b", look_alike] if order == "renamed first" else [look_alike, "a/b"]
    lines = [f'"{raw}",2022-01-01,{i}' for i, raw in enumerate(raws)]
    out = tmp_path / "out"
    code = split_main([write_csv(tmp_path / "in.csv", lines)], out)
    if code == 0:  # the sanitiser told them apart: two customers, each with its own row
        folders = [p for p in out.iterdir() if p.is_dir()]
        assert len(folders) == 2
        assert sorted(customer_rows(out, p.name)[0][1] for p in folders) == [0.0, 1.0]
    else:  # or split refuses, naming both ids
        assert code == 2
        err = capsys.readouterr().err
        assert "'a/b'" in err and repr(look_alike) in err


def test_ids_named_like_our_own_files_do_not_clash(tmp_path: Path) -> None:
    raws = ["split_summary.json", "split_renamed_ids.jsonl", "x/y"]
    lines = [f"{raw},2022-01-01,{i}" for i, raw in enumerate(raws)]
    out = tmp_path / "out"
    assert split_main([write_csv(tmp_path / "in.csv", lines)], out) == 0
    summary = summary_of(out)
    assert summary["customers"] == 3
    assert set(summary["renamed_ids"]) == set(raws)
    for i, raw in enumerate(raws):
        assert customer_rows(out, summary["renamed_ids"][raw]) == [("2022-01-01 00:00:00", float(i))]


def test_safe_names_are_stable_across_processes() -> None:
    # Pinned value: the name must not depend on PYTHONHASHSEED or the run.
    assert (
        safe_customer_id("../evil")
        == "_evil--" + __import__("hashlib").blake2b(b"../evil", digest_size=8).hexdigest()
    )


# ------------------------------------------------------------------------------------------ buckets


def read_parts(out: Path) -> dict[str, pd.DataFrame]:
    parts = {}
    for path in sorted(out.glob("part-*.csv")):
        assert path.read_text().splitlines()[0] == HEADER
        parts[path.name] = pd.read_csv(path, dtype={"customer_id": str})
    return parts


def test_buckets_hold_whole_customers_sorted_and_complete(tmp_path: Path, fleet_frame: pd.DataFrame) -> None:
    inputs = _shuffled_parts(fleet_frame, tmp_path / "in", parts=3)
    out = tmp_path / "out"
    assert split_main(inputs, out, buckets=4, chunk_rows=9) == 0
    parts = read_parts(out)
    assert 1 <= len(parts) <= 4
    seen: dict[str, str] = {}
    for name, frame in parts.items():
        assert len(frame) > 0  # empty parts are not written
        for customer in frame["customer_id"].unique():
            assert customer not in seen, f"customer {customer} in {seen.get(customer)} and {name}"
            seen[customer] = name
            assert name == f"part-{zlib.crc32(customer.encode()) % 4:05d}.csv"
        keys = list(zip(frame["customer_id"], pd.to_datetime(frame["timestamp"]), strict=True))
        assert keys == sorted(keys)  # by (customer, time)
    union = pd.concat(parts.values())
    assert len(union) == len(fleet_frame)
    expected = expected_by_customer(fleet_frame)
    got = expected_by_customer(union)
    assert got == expected
    assert summary_of(out)["parts_written"] == len(parts)


def test_bucket_output_is_stable_across_runs_and_spool_counts(
    tmp_path: Path, fleet_frame: pd.DataFrame
) -> None:
    inputs = _shuffled_parts(fleet_frame, tmp_path / "in", parts=2)
    split(inputs, tmp_path / "one", buckets=3, chunk_rows=1000)
    result = split(list(reversed(inputs)), tmp_path / "many", buckets=3, chunk_rows=11, spool_rows=40)
    assert result.summary["spool_files"] >= 6  # several spools per bucket, merged back in order
    one = {p.name: p.read_bytes() for p in (tmp_path / "one").glob("part-*.csv")}
    many = {p.name: p.read_bytes() for p in (tmp_path / "many").glob("part-*.csv")}
    assert one == many
    assert len(one) == 3


def test_more_buckets_than_customers_writes_no_empty_parts(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", ["a,2022-01-01,1", "b,2022-01-01,2", "c,2022-01-02,3"])
    out = tmp_path / "out"
    assert split_main([source], out, buckets=50) == 0
    parts = read_parts(out)
    assert 1 <= len(parts) <= 3
    assert sorted(pd.concat(parts.values())["customer_id"]) == ["a", "b", "c"]


def test_buckets_use_safe_names(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", ['"../x,y",2022-01-01,1'])
    out = tmp_path / "out"
    assert split_main([source], out, buckets=2) == 0
    (frame,) = read_parts(out).values()
    assert list(frame["customer_id"]) == [safe_customer_id("../x,y")]


# ------------------------------------------------------------------------------ atomicity and the CLI


def test_no_temporary_files_are_left(tmp_path: Path, fleet_csv: Path) -> None:
    for buckets in (0, 3):
        out = tmp_path / f"out-{buckets}"
        assert split([fleet_csv], out, buckets=buckets, chunk_rows=13, spool_rows=100).summary["rows_written"]
        leftovers = [p for p in all_output_files(out) if p.name.startswith(".") or p.name.endswith(".tmp")]
        assert leftovers == []
        assert not (out / WORK_DIR).exists()


def test_cli_exit_codes(tmp_path: Path, fleet_csv: Path, capsys) -> None:
    out = tmp_path / "out"
    assert cli_main(["split", "--input", str(fleet_csv), "--out", str(out), "--chunk-rows", "100"]) == 0
    assert summary_of(out)["customers"] == 25
    bucketed = tmp_path / "bucketed"
    assert cli_main(["split", "--input", str(fleet_csv), "--out", str(bucketed), "--buckets", "2"]) == 0
    assert len(list(bucketed.glob("part-*.csv"))) == 2
    bad = write_csv(tmp_path / "bad.csv", ["1,2"], header="customer,consumption")
    assert cli_main(["split", "--input", str(bad), "--out", str(tmp_path / "o2")]) == 2
    assert "missing columns customer_id, timestamp" in capsys.readouterr().err
    rubbish = write_csv(tmp_path / "rubbish.csv", ["1,never,1"])
    assert cli_main(["split", "--input", str(rubbish), "--out", str(tmp_path / "o3")]) == 1
    assert (
        cli_main(["split", "--input", str(fleet_csv), "--out", str(tmp_path / "o4"), "--buckets", "-1"]) == 2
    )


def test_defaults_are_the_processing_paths(tmp_path: Path, monkeypatch, fleet_csv: Path) -> None:
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    channel = tmp_path / "processing" / "input" / "raw"
    channel.mkdir(parents=True)
    (channel / "fleet.csv").write_bytes(fleet_csv.read_bytes())
    assert cli_main(["split"]) == 0
    out = tmp_path / "processing" / "output"
    reports = tmp_path / "processing" / "reports"
    assert json.loads((reports / SUMMARY_FILE).read_text())["customers"] == 25
    assert (out / "0" / "data.csv").is_file()
    assert sorted(p.name for p in reports.iterdir()) == [SUMMARY_FILE]


def test_failure_message_for_the_processing_job(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    write_csv(tmp_path / "processing" / "input" / "x.csv", ["1,2"], header="customer_id,value")
    assert cli_main(["split"]) == 2
    message = (tmp_path / "output" / "message").read_text()
    assert "missing columns timestamp, consumption" in message


def test_train_calls_each_customer_what_split_named_it(tmp_path: Path) -> None:
    from fleetcast.training.inputs import customer_of_file

    source = write_csv(tmp_path / "in.csv", ["plain,2022-01-01,1", '"a/b",2022-01-01,2'])
    out = tmp_path / "out"
    assert split_main([source], out) == 0
    for folder in (p for p in out.iterdir() if p.is_dir()):
        assert customer_of_file(folder / "data.csv") == folder.name
