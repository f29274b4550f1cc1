import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from fleetcast.model import archive


def test_round_trip_and_checksum(tmp_path: Path):
    path = archive.write_archive(tmp_path, "7", '{"model": 1}', {"customer": "7"})
    assert path == tmp_path / "7.tar.gz"
    model_json, metadata = archive.read_archive(path)
    assert model_json == '{"model": 1}'
    assert metadata["customer"] == "7"
    assert metadata["model_sha256"] == archive.sha256_text(model_json)
    with tarfile.open(path) as tar:
        assert [m.name for m in tar.getmembers()] == ["model.json", "metadata.json"]
        assert all(m.isfile() for m in tar.getmembers())
    assert not list(tmp_path.glob(".tmp-*"))


def test_truncated_archive_is_rejected(tmp_path: Path):
    path = archive.write_archive(tmp_path, "7", "x" * 50_000, {"customer": "7"})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(archive.ArtifactError, match="unreadable archive"):
        archive.read_archive(path)
    assert archive.read_metadata_or_none(path) is None


def test_archive_whose_model_does_not_match_its_checksum_is_rejected(tmp_path: Path):
    metadata = {"customer": "7", "model_sha256": archive.sha256_text("original")}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, payload in (("model.json", b"tampered"), ("metadata.json", json.dumps(metadata).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    (tmp_path / "7.tar.gz").write_bytes(gzip.compress(buffer.getvalue()))
    with pytest.raises(archive.ArtifactError, match="does not match the checksum"):
        archive.read_archive(tmp_path / "7.tar.gz")


def test_model_dir_errors_are_readable(tmp_path: Path):
    with pytest.raises(archive.ArtifactError, match="does not exist"):
        archive.read_model_dir(tmp_path / "missing")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "metadata.json").write_text("{}")
    with pytest.raises(archive.ArtifactError, match=r"missing model\.json"):
        archive.read_model_dir(tmp_path / "m")


def test_stale_temp_files_are_removed_and_never_taken_for_customers(tmp_path: Path):
    (tmp_path / ".tmp-abc.tar.gz").write_bytes(b"partial")
    assert archive.customer_of(tmp_path / ".tmp-abc.tar.gz") is None
    assert archive.customer_of(tmp_path / "42.tar.gz") == "42"
    assert archive.remove_stale_temp_files(tmp_path) == 1
    assert not list(tmp_path.iterdir())


def test_archives_are_staged_in_the_staging_directory_and_renamed_in(tmp_path: Path, monkeypatch):
    target, staging = tmp_path / "checkpoints", tmp_path / "staging"
    staged: list[str] = []
    real_replace = archive.os.replace

    def observe(src, dst):
        staged.append(str(src))
        assert not list(target.glob(".tmp-*"))
        real_replace(src, dst)

    monkeypatch.setattr(archive.os, "replace", observe)
    path = archive.write_archive(target, "7", '{"model": 1}', {"customer": "7"}, staging)
    assert path == target / "7.tar.gz" and archive.read_archive(path)[0] == '{"model": 1}'
    assert len(staged) == 1 and Path(staged[0]).parent == staging
    assert [p.name for p in target.iterdir()] == ["7.tar.gz"] and not list(staging.iterdir())
