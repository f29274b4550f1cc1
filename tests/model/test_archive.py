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
        assert [m.name for m in tar.getmembers()] == ["metadata.json", "model.json"]
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


def _tar(members: list[tuple[tarfile.TarInfo, bytes]], tar_format: int = tarfile.PAX_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tar_format) as tar:
        for info, payload in members:
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if info.isfile() else None)
    return buffer.getvalue()


def _file(name: str, payload: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), payload


def _by_tarfile(raw: bytes) -> list[tuple[str, bool, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return [(m.name, m.isfile(), tar.extractfile(m).read() if m.isfile() else b"") for m in tar]


@pytest.mark.parametrize(
    "members",
    [
        [_file("model.json", b"x" * 1000), _file("compiled.json", b"{}"), _file("metadata.json", b"{}")],
        [_file("empty.json", b""), _file("exactly-one-block", b"y" * 512)],
        [_file("a" * 120, b"a long name: a pax header"), _file("metadata.json", b"{}")],
        [_file("é-non-ascii.json", b"pax too"), _file("b", b"1")],
        [(tarfile.TarInfo("folder"), b""), _file("folder/inner.json", b"{}")],
    ],
)
@pytest.mark.parametrize("tar_format", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_the_in_memory_tar_reader_reads_what_tarfile_reads(members: list, tar_format: int):
    for info, _ in members:
        info.type = tarfile.DIRTYPE if info.name == "folder" else tarfile.REGTYPE
    raw = _tar(members, tar_format)
    assert archive._tar_members(raw) == _by_tarfile(raw)


def test_the_in_memory_tar_reader_refuses_a_corrupt_or_cut_tar_as_tarfile_does():
    raw = _tar([_file("model.json", b"x" * 2000), _file("metadata.json", b"{}")])
    corrupt = raw[:10] + b"!" + raw[11:]  # the first header's checksum no longer matches
    with pytest.raises(tarfile.TarError):
        archive._tar_members(corrupt)
    cut = raw[:1500]  # inside model.json's payload
    with pytest.raises(tarfile.TarError):
        archive._tar_members(cut)


@pytest.mark.parametrize(
    "stream",
    [
        gzip.compress(b"one member", mtime=0),
        gzip.compress(b"two ", mtime=0) + gzip.compress(b"members", mtime=0),
        gzip.compress(b"a cut member" * 100, mtime=0)[:-9],
        b"not gzip at all",
    ],
)
def test_gunzipping_reads_or_refuses_what_gzip_does(stream: bytes):
    try:
        expected: object = gzip.decompress(stream)
    except (OSError, EOFError) as exc:
        expected = type(exc)
    try:
        got: object = archive._gunzipped(stream)
    except (OSError, EOFError) as exc:
        got = type(exc)
    assert got == expected


# ---- reading only metadata.json and compiled.json (the batch forecast) ----------------------------------

COMPILED = {"format": "any document: the archive only checks its checksums", "values": list(range(300))}


def _with_compiled(tmp_path: Path, model_json: str = '{"model": "' + "m" * 60_000 + '"}') -> Path:
    return archive.write_archive(tmp_path, "7", model_json, {"customer": "7"}, compiled=COMPILED)


def test_compiled_json_and_metadata_are_written_before_model_json(tmp_path: Path):
    with tarfile.open(_with_compiled(tmp_path)) as tar:
        assert tar.getnames() == ["metadata.json", "compiled.json", "model.json"]


def test_a_head_read_stops_before_model_json_and_agrees_with_a_full_read(tmp_path: Path):
    path = _with_compiled(tmp_path)
    assert archive._head_members(path.read_bytes()) is not None  # the fast path is taken
    full = archive.read_archive_contents(path)
    head = archive.read_archive_contents(path, model=False)
    assert head.model_bytes is None and full.model_bytes is not None
    assert (head.metadata, head.compiled) == (full.metadata, full.compiled)
    assert head.compiled["values"] == COMPILED["values"]
    assert head.model_json() == full.model_json()  # read (and verified) on demand


@pytest.mark.parametrize("keep", [-1, -4, -8, -9, -2000, 0.5, 0.1])
def test_a_head_read_refuses_an_archive_cut_short_anywhere(tmp_path: Path, keep: float):
    path = _with_compiled(tmp_path)
    data = path.read_bytes()
    # Cut after compiled.json (the trailer's last bytes) and inside or before model.json's payload.
    path.write_bytes(data[: int(len(data) * keep)] if isinstance(keep, float) else data[:keep])
    with pytest.raises(archive.ArtifactError, match="unreadable archive"):
        archive.read_archive_contents(path, model=False)


def _rewritten(path: Path, members: list[tuple[str, bytes]]) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    path.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {info.name: tar.extractfile(info).read() for info in tar}


def test_an_archive_in_the_older_order_is_read_whole_with_the_same_result(tmp_path: Path):
    path = _with_compiled(tmp_path)
    expected = archive.read_archive_contents(path)
    members = _members(path)
    _rewritten(path, [(name, members[name]) for name in ("model.json", "compiled.json", "metadata.json")])
    assert archive._head_members(path.read_bytes()) is None
    got = archive.read_archive_contents(path, model=False)
    assert (got.metadata, got.compiled, got.model_bytes) == (
        expected.metadata,
        expected.compiled,
        expected.model_bytes,
    )


def test_a_head_read_refuses_a_tampered_compiled_json_and_never_looks_past_model_json(tmp_path: Path):
    path = _with_compiled(tmp_path)
    members = _members(path)
    _rewritten(path, [*members.items(), ("extra.json", b"{}")])
    with pytest.raises(archive.ArtifactError, match=r"unexpected member 'extra\.json'"):
        archive.read_archive_contents(path)
    # What follows model.json is not inflated (as a server that trusts compiled.json never reads it).
    assert archive.read_archive_contents(path, model=False).compiled["values"] == COMPILED["values"]
    tampered = {**members, "compiled.json": members["compiled.json"].replace(b"299", b"298")}
    _rewritten(path, list(tampered.items()))
    assert archive._head_members(path.read_bytes()) is not None
    with pytest.raises(archive.ArtifactError, match=r"compiled\.json does not match the checksum"):
        archive.read_archive_contents(path, model=False)
