"""compiled.json in the archive: written by training equal to what a server would compile from model.json,
read by the server instead of model.json only when its checksums vouch for it."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fleetcast.cli import main
from fleetcast.data.generate import customer_series
from fleetcast.model import archive
from fleetcast.model.compiled import COMPILED_FILE, compile_model_json
from fleetcast.model.fit import engine
from fleetcast.model.settings import ProphetSettings
from fleetcast.serving.compiled_predictor import CompiledPredictor
from fleetcast.serving.protocol import ForecastRequest
from fleetcast.serving.safe_tar import safe_extract
from tests.helpers import write_folder_layout, write_hyperparameters

SETTINGS = {
    "defaults": ProphetSettings(),
    "multiplicative": ProphetSettings(seasonality_mode="multiplicative"),
    "no-intervals": ProphetSettings(uncertainty_samples=0),
    "flexible": ProphetSettings(changepoint_prior_scale=0.5),
}


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_the_shipped_compiled_form_is_what_a_server_compiles_from_model_json(name):
    grid = pd.date_range("2022-01-01", periods=365, freq="D")
    for customer in range(12):  # history lengths whose scaled t rounds differently in model.json
        stamps, values = customer_series(customer, 42, grid, 150 + 17 * customer)
        outcome = engine.fit_series(
            np.asarray(stamps, dtype="datetime64[ns]"), np.asarray(values, float), SETTINGS[name]
        )
        model_json = outcome.to_json()
        shipped = engine.compiled_form(outcome, model_json)
        assert shipped is not None
        assert json.dumps(shipped) == json.dumps(compile_model_json(model_json).to_dict()), customer


def test_training_ships_compiled_json_and_a_server_loads_it_without_model_json(sm_root: Path, tmp_path):
    write_folder_layout(sm_root / "input" / "data" / "train", range(2))
    write_hyperparameters(sm_root, workers="1", holdout_days="0", selection="off")
    assert main(["train"]) == 0
    archive_path = sm_root / "checkpoints" / "0.tar.gz"
    with tarfile.open(archive_path) as tar:
        assert sorted(tar.getnames()) == sorted([archive.MODEL_FILE, COMPILED_FILE, archive.METADATA_FILE])
    _, metadata = archive.read_archive(archive_path)  # verifies compiled.json's checksum too
    assert archive.COMPILED_SHA256_KEY in metadata

    shipped_dir = safe_extract_to(archive_path, tmp_path / "shipped")
    reference_dir = safe_extract_to(archive_path, tmp_path / "reference")
    (reference_dir / COMPILED_FILE).unlink()
    request = ForecastRequest(period=7)
    reference = CompiledPredictor.load(reference_dir)
    assert reference.source == archive.MODEL_FILE
    # model.json is never read when compiled.json vouches for itself: even a broken one does not matter
    (shipped_dir / archive.MODEL_FILE).write_text("{not json")
    shipped = CompiledPredictor.load(shipped_dir)
    assert shipped.source == COMPILED_FILE
    assert shipped.forecast(request) == reference.forecast(request)


def safe_extract_to(archive_path: Path, target: Path) -> Path:
    safe_extract(archive_path, target)
    return target


def test_a_compiled_json_its_checksums_do_not_vouch_for_is_ignored(models, tmp_path, caplog):
    model_dir = shutil.copytree(models["daily"].model_dir, tmp_path / "model")
    assert CompiledPredictor.load(model_dir).source == COMPILED_FILE
    document = json.loads((model_dir / COMPILED_FILE).read_text())
    document["k"] = document["k"] * 2  # a changed number: compiled.json no longer matches metadata.json
    (model_dir / COMPILED_FILE).write_text(json.dumps(document))
    loaded = CompiledPredictor.load(model_dir)
    assert loaded.source == archive.MODEL_FILE
    untouched = CompiledPredictor.load(models["daily"].model_dir)
    assert loaded.forecast(ForecastRequest(period=5)) == untouched.forecast(ForecastRequest(period=5))


def test_an_archive_whose_compiled_json_was_changed_is_refused(models, tmp_path):
    work = safe_extract_to(models["daily"].archive, tmp_path / "work")
    (work / COMPILED_FILE).write_text((work / COMPILED_FILE).read_text().replace('"k":', '"k": '))
    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(tampered, "w:gz") as tar:
        for name in (archive.MODEL_FILE, COMPILED_FILE, archive.METADATA_FILE):
            tar.add(work / name, arcname=name)
    with pytest.raises(archive.ArtifactError, match=r"compiled\.json does not match the checksum"):
        archive.read_archive(tampered)
