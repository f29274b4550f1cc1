"""The batch forecast job: the served numbers for every customer, one dataset, bad archives isolated."""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prophet import Prophet

from fleetcast.cli import main
from fleetcast.forecast import dataset
from fleetcast.forecast.predict import PROPHET, CustomerFailed, forecast_archive
from fleetcast.model import archive
from fleetcast.model.dates import infer_frequency
from fleetcast.model.prophet_model import model_to_json
from fleetcast.model.settings import ProphetSettings
from fleetcast.serving.draws import ReplayedStream, ReplayMismatch
from fleetcast.serving.predictors import load_model
from fleetcast.serving.protocol import ForecastRequest
from tests.serving.models import build_model, daily_history, hourly_history

SETTINGS = {
    "daily": ProphetSettings(),
    "no_intervals": replace(ProphetSettings(), uncertainty_samples=0),
    "multiplicative": replace(ProphetSettings(), seasonality_mode="multiplicative"),
    "flat": replace(ProphetSettings(), growth="flat"),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("models")
    models = {
        name: build_model(root, str(i), daily_history(i), s) for i, (name, s) in enumerate(SETTINGS.items())
    }
    models["hourly"] = build_model(root, "9", hourly_history())
    models["naive"] = build_model(root, "10", daily_history(10), kind=archive.BASELINE_KIND)
    return models


@pytest.mark.parametrize("period", [1, 7, 30])
@pytest.mark.parametrize("name", [*SETTINGS, "hourly", "naive"])
def test_a_batch_forecast_is_exactly_what_the_endpoint_answers(built: dict, name: str, period: int):
    model = built[name]
    batch = forecast_archive(model.archive, period)
    served = load_model(model.model_dir).predictor.forecast(ForecastRequest(period=period))["forecast"]
    assert [str(d) for d in batch.ds.astype("datetime64[s]")] == [row["ds"] for row in served]
    assert batch.yhat.tolist() == [row["yhat"] for row in served]
    if name == "no_intervals":
        assert batch.yhat_lower is None and "yhat_lower" not in served[0]
    else:
        assert batch.yhat_lower.tolist() == [row["yhat_lower"] for row in served]
        assert batch.yhat_upper.tolist() == [row["yhat_upper"] for row in served]


@pytest.mark.parametrize("scale", [1e-9, 0.003, 0.5, 1.0, 7.25, 1e6])
def test_replayed_draws_are_numpys_draws_bit_for_bit(scale: float):
    shape = (1000, 7)
    numpy_stream = np.random.RandomState(0)
    expected = [numpy_stream.uniform(size=shape), numpy_stream.laplace(0, scale, shape)]
    expected.append(numpy_stream.normal(0, scale, shape))
    replay = ReplayedStream(*shape).fresh()
    got = [replay.uniform(size=shape), replay.laplace(0, scale, size=shape), replay.normal(0, scale, shape)]
    for want, have in zip(expected, got, strict=True):
        assert np.array_equal(want, have)
    fresh_normals = np.random.RandomState(0).normal(0, scale, shape)  # a flat trend draws only the noise
    assert np.array_equal(ReplayedStream(*shape).fresh().normal(0, scale, shape), fresh_normals)


def test_the_replay_refuses_what_it_was_not_built_for():
    replay = ReplayedStream(10, 3)
    with pytest.raises(ReplayMismatch):
        replay.fresh().uniform(size=(10, 4))
    with pytest.raises(ReplayMismatch):
        replay.fresh().laplace(0, 1.0, size=(10, 3))  # the uniforms come first
    stream = replay.fresh()
    stream.normal(0, 1.0, (10, 3))
    with pytest.raises(ReplayMismatch):
        stream.normal(0, 1.0, (10, 3))


def holiday_archive(directory: Path) -> Path:
    """A model the compiled predictor does not cover (holidays): the job must use Prophet's predict."""
    history = daily_history(5)
    holidays = pd.DataFrame({"holiday": "event", "ds": pd.to_datetime(["2022-02-14", "2022-03-14"])})
    model = Prophet(holidays=holidays, uncertainty_samples=100).fit(history)
    metadata = {
        "customer": "holiday",
        "end": history["ds"].iloc[-1].isoformat(),
        "freq": infer_frequency(history["ds"]),
        "model": "configured",
    }
    return archive.write_archive(directory, "holiday", model_to_json(model), metadata)


def read_dataset(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_job_forecasts_every_archive_and_lists_the_bad_ones(
    built: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    models = tmp_path / "models"
    (models / "run-1").mkdir(parents=True)
    for name in ("daily", "no_intervals", "hourly"):
        (models / "run-1" / built[name].archive.name).write_bytes(built[name].archive.read_bytes())
    good = built["daily"].archive.read_bytes()
    (models / "truncated.tar.gz").write_bytes(good[: len(good) // 2])
    (models / "garbage.tar.gz").write_bytes(b"not a tarball")
    (models / f"{archive.TEMP_PREFIX}half-written.tar.gz").write_bytes(b"")  # a writer's temp file: ignored
    (models / "notes.txt").write_text("not a model")
    holiday_archive(models)
    out, reports = tmp_path / "out", tmp_path / "reports"
    caplog.set_level(logging.INFO, logger="fleetcast")
    args = ["forecast", "--models", str(models), "--period", "5", "--workers", "2"]
    assert main([*args, "--out", str(out), "--reports", str(reports)]) == 0

    rows = read_dataset(out / dataset.dataset_file_name("local"))
    assert tuple(rows[0]) == dataset.COLUMNS
    by_customer: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_customer.setdefault(row["customer"], []).append(row)
    assert sorted(by_customer) == ["0", "1", "9", "holiday"]
    assert all(len(customer_rows) == 5 for customer_rows in by_customer.values())
    assert all(row["yhat_lower"] == "" for row in by_customer["1"])  # trained without intervals
    served = load_model(built["daily"].model_dir).predictor.forecast(ForecastRequest(period=5))["forecast"]
    assert [float(row["yhat_upper"]) for row in by_customer["0"]] == [r["yhat_upper"] for r in served]

    with open(reports / "forecast-failures-local.csv", newline="") as handle:
        failures = {row["customer"]: row["reason"] for row in csv.DictReader(handle)}
    assert sorted(failures) == ["garbage", "truncated"]
    assert all("unreadable archive" in reason for reason in failures.values())
    summary = json.loads((reports / "forecast-summary-local.json").read_text())
    assert summary | {"seconds": 0, "customers_per_second": 0} == summary | {
        "archives": 6,
        "forecast": 4,
        "failed": 2,
        "prophet_fallbacks": 1,
        "seconds": 0,
        "customers_per_second": 0,
    }
    assert not list(out.glob(".*")) and not list(reports.glob(".*"))  # no temporary file left behind
    assert any("forecast 6/6 customers" in message for message in caplog.messages)


def test_the_prophet_fallback_gives_prophets_answer(tmp_path: Path):
    path = holiday_archive(tmp_path)
    batch = forecast_archive(path, 7)
    assert batch.predictor == PROPHET
    model_dir = tmp_path / "extracted"
    model_dir.mkdir()
    model_json, metadata = archive.read_archive(path)
    (model_dir / "model.json").write_text(model_json)
    (model_dir / "metadata.json").write_text(json.dumps(metadata))
    served = load_model(model_dir).predictor.forecast(ForecastRequest(period=7))["forecast"]
    assert batch.yhat.tolist() == [row["yhat"] for row in served]
    assert batch.yhat_lower.tolist() == [row["yhat_lower"] for row in served]


def _rewritten(source: Path, target: Path, compiled: dict | None) -> Path:
    """The archive at `source` written again under `target` with `compiled` as its compiled.json (or none)."""
    contents = archive.read_archive_contents(source)
    metadata = {k: v for k, v in contents.metadata.items() if k != archive.COMPILED_SHA256_KEY}
    return archive.write_archive(
        target, metadata["customer"], contents.model_json(), metadata, compiled=compiled
    )


@pytest.mark.parametrize("period", [1, 7])
def test_the_shipped_compiled_json_is_used_and_gives_what_model_json_gives(
    built: dict, tmp_path: Path, period: int
):
    shipped = built["daily"].archive
    assert archive.read_archive_contents(shipped).compiled is not None  # as training writes it
    with_compiled = forecast_archive(shipped, period)
    assert with_compiled.source == archive.COMPILED_FILE
    older = forecast_archive(
        _rewritten(shipped, tmp_path, None), period
    )  # an archive from before compiled.json
    assert older.source == archive.MODEL_FILE
    for column in ("ds", "yhat", "yhat_lower", "yhat_upper"):
        assert getattr(with_compiled, column).tolist() == getattr(older, column).tolist()


def test_a_compiled_json_this_code_cannot_read_falls_back_to_model_json_loudly(
    built: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    shipped = built["daily"].archive
    newer = {**archive.read_archive_contents(shipped).compiled, "format_version": 999}
    newer.pop("model_sha256")
    batch = forecast_archive(_rewritten(shipped, tmp_path, newer), 7)
    assert batch.source == archive.MODEL_FILE
    assert batch.yhat.tolist() == forecast_archive(shipped, 7).yhat.tolist()
    assert any("ignoring compiled.json" in message for message in caplog.messages)


def test_a_tampered_compiled_json_fails_its_customer(built: dict, tmp_path: Path):
    import tarfile

    shipped = built["daily"].archive
    members = {}
    with tarfile.open(shipped) as tar:
        for info in tar:
            members[info.name] = tar.extractfile(info).read()
    members[archive.COMPILED_FILE] = members[archive.COMPILED_FILE].replace(b'"k":', b'"k": ')
    tampered = tmp_path / shipped.name
    with tarfile.open(tampered, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(CustomerFailed, match=r"compiled\.json does not match the checksum"):
        forecast_archive(tampered, 7)


def test_the_job_fails_clearly_without_input(sm_root: Path, tmp_path: Path):
    assert main(["forecast", "--models", str(tmp_path / "nowhere")]) == 2
    assert "no models folder" in (sm_root / "output" / "message").read_text()
    (tmp_path / "empty").mkdir()
    assert main(["forecast", "--models", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.tar.gz").write_bytes(b"nope")
    args = ["forecast", "--models", str(tmp_path / "bad"), "--out", str(tmp_path / "o2")]
    assert main([*args, "--reports", str(tmp_path / "r2"), "--workers", "1"]) == 1
    assert "none of 1 archives could be forecast" in (sm_root / "output" / "message").read_text()


def run_as(root: Path, host: str, hosts: list[str]) -> list[dict[str, str]]:
    (root / "config").mkdir(exist_ok=True)
    (root / "config" / "resourceconfig.json").write_text(json.dumps({"current_host": host, "hosts": hosts}))
    assert main(["forecast", "--workers", "1", "--period", "3"]) == 0
    return read_dataset(root / "processing" / "output" / "forecasts" / f"forecasts-{host}.csv.gz")


def test_instances_split_the_customers_between_them_with_the_processing_defaults(sm_root: Path, built: dict):
    models = sm_root / "processing" / "input" / "models"
    models.mkdir(parents=True)
    for model in built.values():
        (models / model.archive.name).write_bytes(model.archive.read_bytes())
    hosts = ["algo-1", "algo-2"]
    shares = [{row["customer"] for row in run_as(sm_root, host, hosts)} for host in hosts]
    assert shares[0] and shares[1] and not shares[0] & shares[1]
    assert shares[0] | shares[1] == {model.customer for model in built.values()}
    reports = sm_root / "processing" / "output" / "forecast-reports"
    assert sorted(p.name for p in reports.glob("forecast-summary-*.json")) == [
        "forecast-summary-algo-1.json",
        "forecast-summary-algo-2.json",
    ]


def test_a_sharded_instance_forecasts_what_it_was_given_and_ignores_a_fleet_manifest_there(
    sm_root: Path, built: dict, caplog: pytest.LogCaptureFixture
):
    from fleetcast.model import manifest
    from fleetcast.paths import SHARDED_BY_S3_KEY

    models = sm_root / "processing" / "input" / "models"
    models.mkdir(parents=True)
    mine = [built["daily"], built["flat"]]
    for model in mine:
        (models / model.archive.name).write_bytes(model.archive.read_bytes())
    # A fleet manifest among the shard names archives other instances hold: following it would fail them.
    listed = [manifest.entry_for(c, "r", "d", "s", "configured", None) for c in ("0", "77", "78")]
    manifest.write_manifest(models / manifest.MANIFEST_NAME, listed)
    (sm_root / "config").mkdir()
    models_input = {"InputName": "models", "S3Input": {"LocalPath": "/opt/ml/processing/input/models",
                    "S3DataDistributionType": SHARDED_BY_S3_KEY}}  # fmt: skip
    job = {"ProcessingInputs": [models_input]}
    (sm_root / "config" / "processingjobconfig.json").write_text(json.dumps(job))
    rows = run_as(sm_root, "algo-2", ["algo-1", "algo-2"])
    assert {row["customer"] for row in rows} == {model.customer for model in mine}  # no hash split either
    assert "ignoring" in caplog.text and caplog.text.count("ignoring") == 1


def test_with_a_fleet_manifest_exactly_its_versions_are_forecast(tmp_path: Path, built: dict):
    from fleetcast.model import manifest

    models = tmp_path / "models"
    old, new = built["daily"].archive.read_bytes(), built["flat"].archive.read_bytes()
    for run, payload in (("run-1", old), ("run-2", new)):
        (models / run).mkdir(parents=True)
        (models / run / "0.tar.gz").write_bytes(payload)  # customer 0's model in two runs
    (models / "run-1" / "9.tar.gz").write_bytes(built["hourly"].archive.read_bytes())  # not in the manifest
    entries = [
        manifest.entry_for("0", "run-2", "d", "s", "configured", None),
        manifest.entry_for("5", "run-2", "d", "s", "configured", None),  # listed, but its archive is missing
    ]
    manifest.write_manifest(models / manifest.MANIFEST_NAME, entries)
    out, reports = tmp_path / "out", tmp_path / "reports"
    args = [
        "forecast",
        "--models",
        str(models),
        "--out",
        str(out),
        "--reports",
        str(reports),
        "--workers",
        "1",
    ]
    assert main([*args, "--period", "4"]) == 0
    rows = read_dataset(out / "forecasts-local.csv.gz")
    # The served version (run-2 holds the flat model, whose metadata names customer 3).
    assert {row["customer"] for row in rows} == {"3"} and len(rows) == 4
    with open(reports / "forecast-failures-local.csv", newline="") as handle:
        (failure,) = list(csv.DictReader(handle))
    assert failure["customer"] == "5" and "no such archive" in failure["reason"]


def test_customer_ids_that_need_quoting_round_trip():
    from fleetcast.forecast.predict import CustomerForecast

    forecast = CustomerForecast(
        customer='a,"b"',
        model="m",
        ds=np.array(["2024-01-01"], dtype="datetime64[ns]"),
        yhat=np.array([1.5]),
        yhat_lower=None,
        yhat_upper=None,
        predictor="compiled",
    )
    text = ",".join(dataset.COLUMNS) + "\n" + dataset.csv_lines(forecast)
    row = next(csv.DictReader(io.StringIO(text)))
    assert row == {"customer": 'a,"b"', "ds": "2024-01-01T00:00:00", "yhat": "1.5", "yhat_lower": "",
                   "yhat_upper": "", "model": "m"}  # fmt: skip


def test_a_model_compiled_without_its_history_refuses_a_single_date_interval(built: dict):
    from fleetcast.model.compiled import compile_model_json, future_dates

    model_json, metadata = archive.read_archive(built["daily"].archive)
    compiled = compile_model_json(model_json, history_step=False)
    one_date = future_dates(np.datetime64(metadata["end"]), 1, "D")
    with pytest.raises(ValueError, match="history step"):
        compiled.predict(one_date, seed=0)
    assert compiled.predict(one_date, intervals=False).yhat.shape == (1,)


def test_an_unreadable_resourceconfig_is_named(sm_root: Path, built: dict):
    models = sm_root / "processing" / "input" / "models"
    models.mkdir(parents=True)
    (models / built["daily"].archive.name).write_bytes(built["daily"].archive.read_bytes())
    (sm_root / "config").mkdir()
    (sm_root / "config" / "resourceconfig.json").write_text("{not json")
    assert main(["forecast", "--workers", "1"]) == 2
    assert "resourceconfig.json" in (sm_root / "output" / "message").read_text()


def test_an_instance_dealt_no_archive_of_a_sharded_input_has_nothing_to_do(sm_root: Path):
    # Fewer archives than instances: SageMaker may give an instance of a sharded input no folder at all.
    local = "/opt/ml/processing/input/models"
    models = {
        "InputName": "models",
        "S3Input": {"LocalPath": local, "S3DataDistributionType": "ShardedByS3Key"},
    }
    (sm_root / "config").mkdir()
    (sm_root / "config" / "processingjobconfig.json").write_text(json.dumps({"ProcessingInputs": [models]}))
    assert not (sm_root / "processing" / "input" / "models").exists()
    assert run_as(sm_root, "algo-3", ["algo-1", "algo-2", "algo-3"]) == []
    summary = sm_root / "processing" / "output" / "forecast-reports" / "forecast-summary-algo-3.json"
    assert json.loads(summary.read_text())["archives"] == 0
    # One instance without its folder is still a mistake, sharded or not.
    (sm_root / "config" / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
    )
    assert main(["forecast", "--workers", "1"]) == 2
    assert "no models folder" in (sm_root / "output" / "message").read_text()
