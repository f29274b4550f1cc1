"""The batch forecast of models trained with regressors: future values from a table for every customer or
from each customer's own file, rows equal to what the endpoint answers with the same values."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fleetcast.cli import main
from fleetcast.forecast import dataset
from fleetcast.forecast.predict import CustomerFailed, forecast_archive
from fleetcast.forecast.regressors import RegressorsError, read_table
from fleetcast.model.settings import ProphetSettings, Regressor
from fleetcast.serving.predictors import load_model
from fleetcast.serving.protocol import ForecastRequest
from tests.serving.models import build_model, daily_history
from tests.serving.test_drivers_serving import DRIVERS, drivers_history

PERIOD = 4


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two temperature-driven customers (one with holidays too) and one plain customer."""
    root = tmp_path_factory.mktemp("regressor-fleet")
    humid = ProphetSettings(uncertainty_samples=100, regressors=(Regressor("temperature", "multiplicative"),))
    return {
        "21": build_model(root, "21", drivers_history(21), DRIVERS),
        "22": build_model(root, "22", drivers_history(22), humid),
        "5": build_model(root, "5", daily_history(5)),
    }


def future(start: str, temperatures: list[float]) -> pd.DataFrame:
    stamps = pd.date_range(start, periods=len(temperatures), freq="D")
    return pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "temperature": temperatures})


def served(model, temperatures: list[float] | None) -> list[dict]:
    request = ForecastRequest(
        period=PERIOD, regressors={"temperature": tuple(temperatures)} if temperatures else None
    )
    return load_model(model.model_dir).predictor.forecast(request)["forecast"]


def first_date(model) -> str:
    return str(pd.Timestamp(model.metadata["end"]) + pd.Timedelta(days=1))


def test_a_shared_table_gives_every_customer_the_endpoint_s_answer(fleet: dict, tmp_path: Path):
    temperatures = [3.5, -1.25, 7.0, 2.0]
    start = first_date(fleet["21"])
    assert start == first_date(fleet["22"])
    table = future(start, temperatures)
    extra = pd.DataFrame({"timestamp": ["2030-01-01 00:00:00"], "temperature": [9.0]})  # unused rows are fine
    path = tmp_path / "weather.csv.gz"
    with gzip.open(path, "wt") as handle:
        pd.concat([extra, table.iloc[::-1]]).assign(humidity=1.0).to_csv(handle, index=False)  # any order
    for name in ("21", "22", "5"):
        got = forecast_archive(fleet[name].archive, PERIOD, path)
        expected = served(fleet[name], temperatures if name != "5" else None)
        assert got.yhat.tolist() == [row["yhat"] for row in expected]
        assert got.yhat_lower.tolist() == [row["yhat_lower"] for row in expected]
        assert got.yhat_upper.tolist() == [row["yhat_upper"] for row in expected]


def test_each_customer_s_own_file_and_the_job_lists_who_lacks_values(fleet: dict, tmp_path: Path):
    models, folder = tmp_path / "models", tmp_path / "regressors"
    models.mkdir()
    folder.mkdir()
    for model in fleet.values():
        shutil.copy(model.archive, models / model.archive.name)
    own = [1.0, 2.0, 3.0, 4.0]
    future(first_date(fleet["21"]), own).to_csv(folder / "21.csv", index=False)
    future(first_date(fleet["22"]), own[:2]).to_csv(folder / "22.csv", index=False)  # two dates short
    out, reports = tmp_path / "out", tmp_path / "reports"
    args = ["forecast", "--models", str(models), "--out", str(out), "--reports", str(reports)]
    assert main([*args, "--period", str(PERIOD), "--workers", "2", "--regressors", str(folder)]) == 0
    rows = list(dataset.read_rows(out / "forecasts-local.csv.gz"))
    by_customer = {c: [float(r["yhat"]) for r in rows if r["customer"] == c] for c in ("21", "22", "5")}
    assert by_customer["21"] == [row["yhat"] for row in served(fleet["21"], own)]
    assert by_customer["5"] == [row["yhat"] for row in served(fleet["5"], None)]
    assert by_customer["22"] == []
    failures = pd.read_csv(reports / "forecast-failures-local.csv", dtype=str)
    (reason,) = failures.loc[failures["customer"] == "22", "reason"]
    missing = str(np.datetime64(first_date(fleet["22"])) + np.timedelta64(2, "D"))
    assert f"has no 'temperature' value for {missing[:10]}" in reason


def test_without_values_a_driven_customer_fails_with_what_to_pass(fleet: dict):
    with pytest.raises(
        CustomerFailed,
        match=r"regressors \(temperature\): pass --regressors \(launch forecast --regressors-uri\)",
    ):
        forecast_archive(fleet["21"].archive, PERIOD)


def test_a_missing_regressors_path_stops_the_job_before_it_starts(fleet: dict, tmp_path: Path, sm_root: Path):
    args = ["forecast", "--models", str(fleet["5"].archive.parent), "--out", str(tmp_path / "o")]
    assert main([*args, "--regressors", str(tmp_path / "nowhere.csv")]) == 2
    assert "no regressors file or folder" in (sm_root / "output" / "message").read_text()


def test_a_table_for_every_customer_that_cannot_be_read_stops_the_job_before_it_starts(
    fleet: dict, tmp_path: Path, sm_root: Path
):
    table = tmp_path / "weather.csv"
    table.write_text("ds,temperature\n2023-01-01,1\n")  # every driven customer would fail alike
    out = tmp_path / "o"
    args = ["forecast", "--models", str(fleet["5"].archive.parent), "--out", str(out)]
    assert main([*args, "--reports", str(tmp_path / "r"), "--regressors", str(table)]) == 2
    message = (sm_root / "output" / "message").read_text()
    assert "the header must be timestamp,<regressor>,... (it is 'ds,temperature')" in message
    assert not out.exists()


def test_a_customer_without_its_own_file_is_named(fleet: dict, tmp_path: Path):
    with pytest.raises(CustomerFailed, match=r"regressors folder .* has no 21\.csv for customer 21"):
        forecast_archive(fleet["21"].archive, PERIOD, tmp_path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ds,temperature\n2023-01-01,1\n", "the header must be timestamp"),
        ("timestamp,temperature\nyesterday,1\n", "a timestamp cannot be read"),
        ("timestamp,temperature\n2023-01-01,1\n2023-01-01 00:00:00,2\n", "appears twice"),
    ],
)
def test_a_bad_table_is_named(tmp_path: Path, text: str, problem: str):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(RegressorsError, match=problem):
        read_table(path)


def test_a_value_that_is_not_a_number_is_reported_only_where_needed(tmp_path: Path):
    path = tmp_path / "t.csv"
    path.write_text("timestamp,temperature,other\n2023-01-01,1,\n2023-01-02,x,\n")
    table = read_table(path)
    dates = np.array(["2023-01-01"], dtype="datetime64[ns]")
    assert table.values(["temperature"], dates)["temperature"].tolist() == [1.0]
    with pytest.raises(RegressorsError, match="'temperature' at 2023-01-02T00:00:00 is not a number"):
        table.values(["temperature"], np.array(["2023-01-01", "2023-01-02"], dtype="datetime64[ns]"))
    with pytest.raises(RegressorsError, match="no column 'humidity'"):
        table.values(["humidity"], dates)


def test_forecast_sh_refuses_a_missing_regressors_path_before_docker_makes_it(tmp_path: Path):
    script = Path(__file__).resolve().parents[2] / "local_test" / "forecast.sh"
    missing = tmp_path / "weather.csv"
    environment = {"PATH": os.environ["PATH"], "FLEETCAST_FORECAST_REGRESSORS": str(missing)}
    done = subprocess.run(
        ["bash", str(script), "no-such-image", str(tmp_path)],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert f"FLEETCAST_FORECAST_REGRESSORS: no file or folder at {missing}" in done.stderr
    assert not missing.exists()


def test_timestamps_with_an_offset_are_read_as_training_reads_them(tmp_path: Path):
    from fleetcast.training.inputs import parse_timestamps

    stamps = ["2023-01-01T00:00:00Z", "2023-01-02 00:00:00+01:00", "2023-01-03T06:30:00-02:00", "2023-01-04"]
    path = tmp_path / "t.csv"
    path.write_text("timestamp,temperature\n" + "".join(f"{stamp},{i}\n" for i, stamp in enumerate(stamps)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's timezone warning would reach every worker's log
        table = read_table(path)
    expected = parse_timestamps(pd.Series(stamps))
    assert table.values(["temperature"], expected)["temperature"].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_the_compact_iso_form_training_takes_is_taken_too(tmp_path: Path):
    from fleetcast.training.inputs import parse_timestamps

    stamps = ["20230101T060000", "2023-01-02T06:00:00"]
    path = tmp_path / "t.csv"
    path.write_text("timestamp,temperature\n" + "".join(f"{stamp},{i}\n" for i, stamp in enumerate(stamps)))
    expected = parse_timestamps(pd.Series(stamps))
    assert not np.isnat(expected).any()  # training reads both
    assert read_table(path).values(["temperature"], expected)["temperature"].tolist() == [0.0, 1.0]
