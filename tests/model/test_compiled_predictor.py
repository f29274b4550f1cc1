"""CompiledPredictor answers exactly like ProphetPredictor, loads compiled.json or model.json, falls back
to Prophet loudly for models it does not cover."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fleetcast.model import archive
from fleetcast.model.compiled import COMPILED_FILE, NotCompilable, iso_strings
from fleetcast.model.prophet_model import _prophet_class, model_to_json
from fleetcast.model.settings import ProphetSettings
from fleetcast.serving.compiled_predictor import CompiledPredictor, compiled_document, load_predictor
from fleetcast.serving.errors import ServingError, http_status
from fleetcast.serving.predictor import ProphetPredictor
from fleetcast.serving.protocol import ForecastRequest
from tests.serving.models import (
    BuiltModel,
    build_model,
    daily_history,
    extract,
    serving_models,
)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BuiltModel]:
    root = tmp_path_factory.mktemp("compiled-models")
    return {
        **serving_models(root),
        "multiplicative": build_model(
            root, "11", daily_history(11), replace(ProphetSettings(), seasonality_mode="multiplicative")
        ),
        "flat": build_model(root, "12", daily_history(12), replace(ProphetSettings(), growth="flat")),
    }


def _copy(built: BuiltModel, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(built.model_dir, target)
    return target


REQUESTS = [
    ForecastRequest(7),
    ForecastRequest(7, intervals=False),
    ForecastRequest(90),
    ForecastRequest(1),
    ForecastRequest(30, freq="h"),
    ForecastRequest(5, freq="W"),
    ForecastRequest(4, freq="MS"),
]


@pytest.mark.parametrize("kind", ["daily", "multiplicative", "flat", "hourly"])
def test_answers_are_the_prophet_predictors_answers(models, kind: str) -> None:
    built = models[kind]
    compiled = CompiledPredictor.load(built.model_dir)
    prophet = ProphetPredictor.load(built.model_dir)
    assert compiled.source == COMPILED_FILE  # shipped by archive_model, as training ships it
    for request in REQUESTS:
        ours, theirs = compiled.forecast(request), prophet.forecast(request)
        assert ours["customer"] == theirs["customer"] == built.customer
        assert [row["ds"] for row in ours["forecast"]] == [row["ds"] for row in theirs["forecast"]], request
        assert [list(row) for row in ours["forecast"]] == [list(row) for row in theirs["forecast"]]
        for column in ours["forecast"][0]:
            if column != "ds":
                got = [row[column] for row in ours["forecast"]]
                expected = [row[column] for row in theirs["forecast"]]
                np.testing.assert_allclose(got, expected, rtol=1e-9, atol=0, err_msg=f"{request} {column}")


def test_generator_intervals_are_reproducible_and_close_to_prophets(models) -> None:
    built = models["daily"]
    fast = CompiledPredictor.load(built.model_dir, prophet_identical=False)
    prophet = ProphetPredictor.load(built.model_dir).forecast(ForecastRequest(14))["forecast"]
    first, again = (
        fast.forecast(ForecastRequest(14))["forecast"],
        fast.forecast(ForecastRequest(14))["forecast"],
    )
    assert first == again
    for ours, theirs in zip(first, prophet, strict=True):
        assert ours["yhat"] == pytest.approx(theirs["yhat"], rel=1e-9)
        width = theirs["yhat_upper"] - theirs["yhat_lower"]
        assert ours["yhat_lower"] != theirs["yhat_lower"]  # a different stream...
        assert abs(ours["yhat_lower"] - theirs["yhat_lower"]) < 0.15 * width  # ...of the same distribution
        assert abs(ours["yhat_upper"] - theirs["yhat_upper"]) < 0.15 * width


def test_compiled_json_is_used_when_it_matches_model_json(models, tmp_path: Path) -> None:
    model_dir = _copy(models["daily"], tmp_path)
    (model_dir / COMPILED_FILE).write_text(compiled_document((model_dir / "model.json").read_text()))
    predictor = CompiledPredictor.load(model_dir)
    assert predictor.source == COMPILED_FILE
    reference = CompiledPredictor.load(models["daily"].model_dir)
    assert predictor.forecast(ForecastRequest(7)) == reference.forecast(ForecastRequest(7))


@pytest.mark.parametrize(
    "spoil",
    [
        lambda text: text.replace('"model_sha256":"', '"model_sha256":"0'),
        lambda text: text[: len(text) // 2],
        lambda text: json.dumps({**json.loads(text), "format_version": 99}),
    ],
)
def test_stale_or_broken_compiled_json_is_ignored_loudly(models, tmp_path: Path, caplog, spoil) -> None:
    model_dir = _copy(models["daily"], tmp_path)
    (model_dir / COMPILED_FILE).write_text(spoil(compiled_document((model_dir / "model.json").read_text())))
    with caplog.at_level(logging.WARNING, logger="fleetcast.serving.compiled_predictor"):
        predictor = CompiledPredictor.load(model_dir)
    assert predictor.source == "model.json"
    assert any(COMPILED_FILE in record.getMessage() for record in caplog.records)


def _holiday_model_dir(root: Path) -> Path:
    history = daily_history(13)
    holidays = pd.DataFrame({"holiday": "closure", "ds": history["ds"].iloc[[10, 50, 90]]})
    model = _prophet_class()(holidays=holidays).fit(history)
    metadata = {"customer": "13", "end": history["ds"].iloc[-1].isoformat(), "freq": "D"}
    archive_path = archive.write_archive(root / "archives", "13", model_to_json(model), metadata)
    return extract(archive_path, root / "models" / "m-13" / "model")


def test_uncovered_models_fall_back_to_prophet_loudly(tmp_path: Path, caplog) -> None:
    model_dir = _holiday_model_dir(tmp_path)
    with pytest.raises(NotCompilable, match="holidays"):
        CompiledPredictor.load(model_dir)
    with caplog.at_level(logging.WARNING, logger="fleetcast.serving.compiled_predictor"):
        predictor = load_predictor(model_dir)
    assert isinstance(predictor, ProphetPredictor)
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "holidays" in warning and "Prophet's own predict" in warning and str(model_dir) in warning
    assert len(predictor.forecast(ForecastRequest(7))["forecast"]) == 7


def test_covered_models_load_compiled(models, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        predictor = load_predictor(models["hourly"].model_dir)
    assert isinstance(predictor, CompiledPredictor)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_errors_match_the_prophet_predictor(models, tmp_path: Path) -> None:
    def error_of(call) -> tuple[int, str]:
        with pytest.raises(ServingError) as caught:
            call()
        return http_status(caught.value), caught.value.code

    no_intervals = models["no_intervals"].model_dir
    with_intervals = ForecastRequest(7, intervals=True)
    for cls in (CompiledPredictor, ProphetPredictor):
        assert error_of(lambda cls=cls: cls.load(tmp_path / "absent")) == (404, "model_missing")
        unavailable = error_of(lambda cls=cls: cls.load(no_intervals).forecast(with_intervals))
        assert unavailable == (400, "intervals_unavailable")
    # Past datetime64[ns] (April 2262): refused. (pandas 3 lets Prophet's own path go on in microseconds.)
    far = ForecastRequest(366, freq="365D")
    assert error_of(lambda: CompiledPredictor.load(models["daily"].model_dir).forecast(far)) == (
        400,
        "bad_period",
    )
    assert CompiledPredictor.load(no_intervals).forecast(ForecastRequest(3))["forecast"][0].keys() == {
        "ds",
        "yhat",
    }

    tampered = _copy(models["daily"], tmp_path)
    (tampered / COMPILED_FILE).unlink()  # the model.json path (a shipped compiled.json never reads it)
    (tampered / "model.json").write_text(
        (tampered / "model.json").read_text().replace('"growth"', '"growth" ')
    )
    assert error_of(lambda: CompiledPredictor.load(tampered)) == (400, "model_invalid")

    no_end = tmp_path / "no-end"
    shutil.copytree(models["daily"].model_dir, no_end)
    metadata = json.loads((no_end / "metadata.json").read_text())
    (no_end / "metadata.json").write_text(json.dumps({**metadata, "end": "the day before yesterday"}))
    assert error_of(lambda: CompiledPredictor.load(no_end)) == (400, "model_invalid")


def test_interval_seed_is_the_prophet_predictors() -> None:
    from fleetcast.serving import compiled_predictor, predictor

    assert compiled_predictor.INTERVAL_SEED == predictor.INTERVAL_SEED


def test_serving_compiled_models_never_imports_pandas_or_prophet(models) -> None:
    """A fresh process that loads and answers with compiled models keeps pandas and Prophet out of memory."""
    script = (
        "import sys\n"
        "from fleetcast.serving.compiled_predictor import load_predictor\n"
        "from fleetcast.serving.protocol import ForecastRequest\n"
        "requests = [ForecastRequest(7), ForecastRequest(3, freq='h'), ForecastRequest(2, freq='W-MON')]\n"
        "for path in sys.argv[1:]:\n"
        "    for request in requests:\n"
        "        load_predictor(path).forecast(request)\n"
        "print(sorted(m for m in ('pandas', 'prophet', 'cmdstanpy') if m in sys.modules))\n"
    )
    dirs = [str(models[kind].model_dir) for kind in ("daily", "hourly", "flat")]
    done = subprocess.run([sys.executable, "-c", script, *dirs], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_iso_strings_are_pandas_isoformat() -> None:
    stamps = pd.to_datetime(
        [
            "2023-01-01 00:00:00",
            "2023-01-01 13:45:07",
            "1969-12-31 23:59:59",
            "2023-01-01 00:00:00.5",
            "2023-01-01 00:00:00.000000001",
        ],
        format="ISO8601",
    )
    for chunk in (stamps[:3], stamps, stamps[3:]):
        assert iso_strings(chunk.to_numpy(dtype="datetime64[ns]")) == [s.isoformat() for s in chunk]


TRAIN_CONFIGS = {
    "defaults": ("D", {}),
    "multiplicative-flat": (
        "D",
        {"growth": "flat", "seasonality_mode": "multiplicative", "weekly_seasonality": "5"},
    ),
    "custom-orders": ("D", {"yearly_seasonality": "true", "daily_seasonality": "3", "n_changepoints": "7"}),
    "hourly": (
        "h",
        {"changepoint_prior_scale": "0.3", "interval_width": "0.95", "uncertainty_samples": "300"},
    ),
    # Weekday and weekend daily shapes: conditions from the timestamp, in train, compiled and fallback alike.
    "hourly-day-type": ("h", {"daily_by_day_type": "true", "selection": "off", "uncertainty_samples": "200"}),
}


@pytest.mark.parametrize("config", sorted(TRAIN_CONFIGS))
def test_models_from_fleetcast_train_compile_and_answer_like_prophet(
    sm_root: Path, tmp_path: Path, config: str
):
    """The artifacts `train` really writes, for the settings it offers: compiled, identical answers."""
    from fleetcast.cli import main
    from fleetcast.data.generate import customer_series
    from fleetcast.training.config import CANDIDATE_NAMES
    from tests.helpers import write_hyperparameters

    freq, hyperparameters = TRAIN_CONFIGS[config]
    grid = pd.date_range("2022-01-01", periods=24 * 30 if freq == "h" else 400, freq=freq)
    for customer in range(2):
        stamps, values = customer_series(customer, 5, grid, len(grid) - 20)
        folder = sm_root / "input" / "data" / "train" / str(customer)
        folder.mkdir(parents=True)
        frame = pd.DataFrame(
            {"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "consumption": values.round(3)}
        )
        frame.to_csv(folder / "data.csv", index=False)
    # Every Prophet candidate may win, not the seasonal-naive kind (tests/serving/test_baseline_serving.py).
    prophet_candidates = ",".join(name for name in CANDIDATE_NAMES if name != "naive")
    write_hyperparameters(sm_root, **{"workers": "1", "selection": prophet_candidates, **hyperparameters})
    assert main(["train"]) == 0

    archives = sorted((sm_root / "checkpoints").glob("*.tar.gz"))
    assert len(archives) == 2
    for archive_path in archives:
        model_dir = extract(archive_path, tmp_path / archive_path.name / "model")
        compiled, prophet = load_predictor(model_dir), ProphetPredictor.load(model_dir)
        assert isinstance(compiled, CompiledPredictor), config
        if config == "hourly-day-type":
            conditions = [props["condition_name"] for props in prophet.model.seasonalities.values()]
            assert conditions == ["weekday", "weekend", None]
        assert compiled.freq == prophet.freq  # (pandas 3 infers "24h" for gappy daily data)
        for request in (ForecastRequest(7), ForecastRequest(24, intervals=False)):
            ours, theirs = compiled.forecast(request)["forecast"], prophet.forecast(request)["forecast"]
            assert [row["ds"] for row in ours] == [row["ds"] for row in theirs]
            for column in ours[0]:
                if column != "ds":
                    got, expected = [r[column] for r in ours], [r[column] for r in theirs]
                    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=0, err_msg=f"{config} {column}")
