"""No model is ever lost: where `train` delivers the archives, with and without a CheckpointConfig."""

from __future__ import annotations

import json
import logging
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from fleetcast.cli import main
from fleetcast.model import archive
from fleetcast.model.prophet_model import model_from_json
from fleetcast.paths import DEFAULT_CHECKPOINT_LOCAL_PATH, SageMakerPaths
from fleetcast.training import job
from fleetcast.training.config import ConfigError, parse_hyperparameters, read_checkpoint_config
from tests.helpers import write_folder_layout, write_hyperparameters

FAST = {"workers": "2", "holdout_days": "0", "uncertainty_samples": "0"}


def channel(root: Path) -> Path:
    return root / "input" / "data" / "train"


def configure_checkpoints(root: Path, local_path: str = DEFAULT_CHECKPOINT_LOCAL_PATH) -> None:
    """What SageMaker writes for a job with a CheckpointConfig (the key AWS's smdebug reads)."""
    config = {"LocalPath": local_path, "S3Uri": "s3://bucket/models/"}
    (root / "input" / "config" / "checkpointconfig.json").write_text(json.dumps(config))


def archives_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(f"*{archive.ARCHIVE_SUFFIX}"))


def model_tarball(root: Path, out: Path) -> Path:
    """/opt/ml/model tarred as SageMaker (and SDK local mode) does: its entries at the top."""
    with tarfile.open(out, "w:gz") as tar:
        for entry in sorted((root / "model").iterdir()):
            tar.add(entry, arcname=entry.name)
    return out


def test_without_checkpoints_every_model_arrives_in_model_tar_gz(
    sm_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    write_folder_layout(channel(sm_root), range(3))
    write_hyperparameters(sm_root, **FAST)
    with caplog.at_level(logging.INFO, logger="fleetcast.train"):
        assert main(["train"]) == 0
    assert "models will end up in the job's model.tar.gz" in caplog.text
    assert "packed 3 archives" in caplog.text

    # Unpacked, model.tar.gz is a multi-model endpoint's prefix: <customer>.tar.gz at the top.
    tarball = model_tarball(sm_root, tmp_path / "model.tar.gz")
    extracted = tmp_path / "extracted"
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        tar.extractall(extracted)
    assert sorted(n for n in names if n.endswith(".tar.gz")) == ["0.tar.gz", "1.tar.gz", "2.tar.gz"]
    assert "fleet-summary-algo-1.json" in names
    model_json, metadata = archive.read_archive(extracted / "1.tar.gz")
    assert metadata["customer"] == "1"
    model = model_from_json(model_json)
    future = pd.DataFrame({"ds": pd.date_range(pd.Timestamp(metadata["end"]), periods=3, freq="D")})
    assert len(model.predict(future)) == 3
    # The same bytes as the checkpoint (a link where it can be), not a second encoding.
    for name in archives_in(sm_root / "checkpoints"):
        assert (sm_root / "model" / name).read_bytes() == (sm_root / "checkpoints" / name).read_bytes()


def test_with_checkpoints_the_model_folder_holds_only_the_summary(
    sm_root: Path, caplog: pytest.LogCaptureFixture
):
    write_folder_layout(channel(sm_root), range(2))
    write_hyperparameters(sm_root, **FAST)
    configure_checkpoints(sm_root, "/opt/ml/checkpoints/")
    with caplog.at_level(logging.INFO, logger="fleetcast.train"):
        assert main(["train"]) == 0
    assert "models will end up in the checkpoint S3 prefix" in caplog.text
    assert "model.tar.gz" not in caplog.text
    assert archives_in(sm_root / "checkpoints") == ["0.tar.gz", "1.tar.gz"]
    assert sorted(p.name for p in (sm_root / "model").iterdir()) == ["fleet-summary-algo-1.json"]


def test_model_output_both_packs_even_with_checkpoints(sm_root: Path, caplog: pytest.LogCaptureFixture):
    write_folder_layout(channel(sm_root), range(2))
    write_hyperparameters(sm_root, **FAST, model_output="both")
    configure_checkpoints(sm_root)
    with caplog.at_level(logging.INFO, logger="fleetcast.train"):
        assert main(["train"]) == 0
    assert "the checkpoint S3 prefix" in caplog.text and "and the job's model.tar.gz" in caplog.text
    assert archives_in(sm_root / "model") == ["0.tar.gz", "1.tar.gz"]


def test_model_output_checkpoints_without_a_checkpoint_config_says_the_models_are_lost(
    sm_root: Path, caplog: pytest.LogCaptureFixture
):
    write_folder_layout(channel(sm_root), range(1))
    write_hyperparameters(sm_root, **FAST, model_output="checkpoints")
    assert main(["train"]) == 0
    warning = next(r for r in caplog.records if "models will end up in" in r.getMessage())
    assert warning.levelno == logging.WARNING
    assert "NOWHERE that outlives this job" in warning.getMessage()
    assert archives_in(sm_root / "model") == []


def test_a_checkpoint_local_path_we_do_not_write_to_counts_as_no_checkpoints(
    sm_root: Path, caplog: pytest.LogCaptureFixture
):
    write_folder_layout(channel(sm_root), range(1))
    write_hyperparameters(sm_root, **FAST)
    configure_checkpoints(sm_root, "/opt/ml/elsewhere")
    assert main(["train"]) == 0
    assert "CheckpointConfig.LocalPath is" in caplog.text
    assert archives_in(sm_root / "model") == ["0.tar.gz"]


def test_resumed_customers_are_packed_and_failed_ones_are_not(sm_root: Path):
    write_folder_layout(channel(sm_root), range(3))
    (channel(sm_root) / "short").mkdir()
    (channel(sm_root) / "short" / "data.csv").write_text("timestamp,consumption\n2022-01-01,1\n")
    write_hyperparameters(sm_root, **FAST, max_failure_rate="0.5")
    assert main(["train"]) == 0
    for packed in (sm_root / "model").glob("*.tar.gz"):
        packed.unlink()  # a new job gets an empty model folder; the checkpoints come back from S3
    assert main(["train"]) == 0  # every good customer is skipped now
    assert archives_in(sm_root / "model") == ["0.tar.gz", "1.tar.gz", "2.tar.gz"]


def test_fleet_scale_says_what_to_configure_instead(
    sm_root: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    write_folder_layout(channel(sm_root), range(3))
    write_hyperparameters(sm_root, **FAST)
    monkeypatch.setattr(job, "MODEL_TARBALL_MAX_CUSTOMERS", 2)
    monkeypatch.setattr(job, "MODEL_TARBALL_MAX_BYTES", 100)
    assert main(["train"]) == 0
    assert "3 customers is fleet scale for one model.tar.gz (over 2)" in caplog.text
    assert "GB of archives in one model.tar.gz is fleet scale" in caplog.text
    assert "checkpoint_s3_uri" in caplog.text
    assert archives_in(sm_root / "model") == ["0.tar.gz", "1.tar.gz", "2.tar.gz"]  # still never lost


def test_checkpoint_config_reading(sm_root: Path):
    paths = SageMakerPaths(sm_root)
    assert not read_checkpoint_config(paths).configured
    configure_checkpoints(sm_root)
    found = read_checkpoint_config(paths)
    assert found.configured and found.covers(paths.checkpoints_dir)
    paths.checkpoint_config_file.write_text("{}")  # LocalPath omitted: the API's default
    assert read_checkpoint_config(paths).covers(paths.checkpoints_dir)
    paths.checkpoint_config_file.write_text("[]")
    with pytest.raises(ConfigError, match="must hold a JSON object"):
        read_checkpoint_config(paths)


def test_model_output_values():
    assert parse_hyperparameters({}).job.model_output == "auto"
    assert parse_hyperparameters({"model_output": "Both"}).job.model_output == "both"
    with pytest.raises(ConfigError, match="model_output='model': must be one of auto, checkpoints, both"):
        parse_hyperparameters({"model_output": "model"})
