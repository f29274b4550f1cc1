"""Safe extraction, TargetModel name checks and the LRU policy: the endpoint's pure parts."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from fleetcast.local.cache_policy import LruPolicy
from fleetcast.local.model_source import InvalidTargetModelError, check_target_model
from fleetcast.serving.safe_tar import UnsafeArchiveError, safe_extract


def _tar(path: Path, members: list[tarfile.TarInfo], payloads: dict[str, bytes] | None = None) -> Path:
    payloads = payloads or {}
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            data = payloads.get(info.name)
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _special(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.devmajor, info.devminor = 1, 3
    return info


def test_extracts_regular_files_and_folders(tmp_path: Path) -> None:
    folder = tarfile.TarInfo("sub")
    folder.type = tarfile.DIRTYPE
    archive = _tar(
        tmp_path / "ok.tar.gz",
        [_file("model.json"), folder, _file("sub/metadata.json"), _file("./x.txt")],
        {"model.json": b"{}", "sub/metadata.json": b'{"a": 1}', "./x.txt": b"x"},
    )
    written = safe_extract(archive, tmp_path / "out")
    assert written == 2 + 8 + 1
    assert (tmp_path / "out" / "model.json").read_bytes() == b"{}"
    assert (tmp_path / "out" / "sub" / "metadata.json").read_bytes() == b'{"a": 1}'
    assert (tmp_path / "out" / "x.txt").read_bytes() == b"x"


SLIPS = {
    "dot-dot": ([_file("../escaped.txt")], {"../escaped.txt": b"pwned"}, "'..'"),
    "nested dot-dot": ([_file("a/../../escaped.txt")], {"a/../../escaped.txt": b"pwned"}, "'..'"),
    "absolute": ([_file("/tmp/escaped-abs.txt")], {"/tmp/escaped-abs.txt": b"pwned"}, "absolute"),
    "backslash": ([_file("..\\escaped.txt")], {"..\\escaped.txt": b"pwned"}, "backslash"),
    "drive letter": ([_file("C:escaped.txt")], {"C:escaped.txt": b"pwned"}, "absolute"),
    "symlink": ([_link("model.json", "/etc/passwd", tarfile.SYMTYPE)], {}, "link"),
    "symlink then write through it": (
        [_link("sub", "..", tarfile.SYMTYPE), _file("sub/escaped.txt")],
        {"sub/escaped.txt": b"pwned"},
        "link",
    ),
    "hardlink": ([_link("model.json", "/etc/passwd", tarfile.LNKTYPE)], {}, "link"),
    "char device": ([_special("null", tarfile.CHRTYPE)], {}, "device"),
    "block device": ([_special("disk", tarfile.BLKTYPE)], {}, "device"),
    "fifo": ([_special("pipe", tarfile.FIFOTYPE)], {}, "fifo"),
}


@pytest.mark.parametrize("case", sorted(SLIPS))
def test_rejects_archives_that_would_escape_or_create_special_files(tmp_path: Path, case: str) -> None:
    members, payloads, reason = SLIPS[case]
    work = tmp_path / "work"
    work.mkdir()
    archive = _tar(tmp_path / "bad.tar.gz", members, payloads)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(UnsafeArchiveError, match=reason):
        safe_extract(archive, work / "out")
    assert not (work / "out").exists(), "a rejected archive leaves no partial folder"
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert not Path("/tmp/escaped-abs.txt").exists()


def test_caps_the_extracted_size_and_member_count(tmp_path: Path) -> None:
    big = _tar(tmp_path / "big.tar.gz", [_file("a"), _file("b")], {"a": b"x" * 600, "b": b"y" * 600})
    with pytest.raises(UnsafeArchiveError, match="more than 1000 bytes"):
        safe_extract(big, tmp_path / "out1", max_bytes=1000)
    many = _tar(
        tmp_path / "many.tar.gz", [_file(f"f{i}") for i in range(5)], {f"f{i}": b"." for i in range(5)}
    )
    with pytest.raises(UnsafeArchiveError, match="more than 3 members"):
        safe_extract(many, tmp_path / "out2", max_members=3)
    assert not (tmp_path / "out1").exists() and not (tmp_path / "out2").exists()


def test_rejects_garbage_duplicates_and_empty_archives(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"this is not a tarball")
    with pytest.raises(UnsafeArchiveError, match="unreadable archive"):
        safe_extract(garbage, tmp_path / "o1")
    twice = _tar(tmp_path / "twice.tar.gz", [_file("a"), _file("a")], {"a": b"1"})
    with pytest.raises(UnsafeArchiveError, match="appears twice"):
        safe_extract(twice, tmp_path / "o2")
    empty = _tar(tmp_path / "empty.tar.gz", [])
    with pytest.raises(UnsafeArchiveError, match="empty"):
        safe_extract(empty, tmp_path / "o3")


@pytest.mark.parametrize("name", ["7.tar.gz", "eu/west/7.tar.gz", "customer_7-v2.tar.gz"])
def test_accepts_relative_target_models(name: str) -> None:
    assert check_target_model(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "required"),
        (None, "required"),
        ("../7.tar.gz", "'..'"),
        ("a/../../7.tar.gz", "'..'"),
        ("/etc/passwd", "absolute"),
        ("a//b.tar.gz", "empty"),
        ("./7.tar.gz", "'.'"),
        ("..\\7.tar.gz", "characters"),
        ("7.tar.gz\x00", "characters"),
        ("x" * 1025, "longer"),
    ],
)
def test_rejects_target_models_that_escape_the_prefix(name: str | None, reason: str) -> None:
    with pytest.raises(InvalidTargetModelError, match=reason):
        check_target_model(name)


def test_lru_policy_evicts_least_recently_used_and_never_pinned() -> None:
    lru = LruPolicy(name="loaded", budget=3)
    for key in "abc":
        lru.add(key)
    lru.touch("a")  # order now b, c, a
    assert lru.over_budget_victims(incoming_cost=1) == ["b"]
    lru.pin("b")
    assert lru.over_budget_victims(incoming_cost=1) == ["c"]
    assert lru.over_budget_victims(incoming_cost=2) == ["c", "a"]
    lru.pin("c")
    lru.pin("a")
    assert lru.over_budget_victims(incoming_cost=1) == [], "all pinned: exceed the budget rather than block"
    lru.unpin("b")
    assert lru.eviction_candidates() == ["b"]
    unlimited = LruPolicy(name="loaded", budget=None)
    unlimited.add("x")
    assert unlimited.over_budget_victims(incoming_cost=100) == []
    assert unlimited.eviction_candidates() == ["x"]


def test_disk_budget_counts_bytes() -> None:
    disk = LruPolicy(name="disk", budget=100)
    disk.add("a", 60)
    disk.add("b", 30)
    assert disk.over_budget_victims() == []
    disk.add("c", 30)
    assert disk.over_budget_victims() == ["a"]
    assert disk.over_budget_victims(exclude={"a"}) == ["b"]
