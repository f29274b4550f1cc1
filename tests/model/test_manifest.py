"""The fleet manifest format: sorted rows written whole, read back exactly, merged as a stream."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from fleetcast.model import archive, manifest
from fleetcast.model.manifest import ManifestError
from fleetcast.models_prefix import FolderPrefix, merge_run, resolve


def entry(customer: str, run: str, data: str = "d", smape: float | None = 3.25) -> manifest.ManifestEntry:
    metrics = None if smape is None else {"smape": smape, "naive_smape": 5.0, "mae": 1.5, "naive_mae": 2.0}
    return manifest.entry_for(customer, run, data, "s", "configured", metrics)


def test_rows_round_trip_and_name_the_versioned_target(tmp_path: Path):
    rows = [entry("1", "r1"), entry("10", "r2", smape=None), entry("2", "r1")]
    path, count = manifest.write_manifest(tmp_path / "m.csv.gz", rows)
    assert count == 3
    assert list(manifest.read_file(path)) == rows
    assert rows[0].target_model == "r1/1.tar.gz" == archive.versioned_name("r1", "1")
    assert rows[0].metrics == {"smape": 3.25, "naive_smape": 5.0, "mae": 1.5, "naive_mae": 2.0}
    assert rows[1].metrics is None
    assert rows[0].is_current("d", "s") and not rows[0].is_current("other", "s")
    assert not rows[0].is_current("d", "other")
    assert not rows[0]._replace(archive_format="0").is_current("d", "s")
    assert not list(tmp_path.glob(".tmp-*"))


def test_unsorted_or_repeated_rows_are_refused_and_leave_no_file(tmp_path: Path):
    target = tmp_path / "m.csv.gz"
    for rows in ([entry("2", "r"), entry("1", "r")], [entry("1", "r"), entry("1", "r")]):
        with pytest.raises(ManifestError, match="sorted by customer"):
            manifest.write_manifest(target, rows)
        assert list(tmp_path.iterdir()) == []


def test_a_broken_manifest_is_a_clear_error(tmp_path: Path):
    good, _ = manifest.write_manifest(tmp_path / "good.csv.gz", [entry(f"{i:03d}", "r") for i in range(100)])
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(good.read_bytes()[:-30])
    with pytest.raises(ManifestError, match=r"cut\.csv\.gz: unreadable"):
        list(manifest.read_file(cut))
    other = tmp_path / "other.csv.gz"
    other.write_bytes(gzip.compress(b"customer,timestamp,consumption\n1,2022-01-01,3\n"))
    with pytest.raises(ManifestError, match="not a fleet manifest"):
        list(manifest.read_file(other))
    with pytest.raises(ManifestError, match="cannot open"):
        list(manifest.read_file(tmp_path / "missing.csv.gz"))


def test_merge_takes_the_run_s_rows_and_keeps_every_other_customer():
    previous = [entry("1", "r1"), entry("2", "r1"), entry("4", "r1")]
    host_a = [entry("2", "r2", data="new")]
    host_b = [entry("3", "r2"), entry("4", "r1")]  # 4 unchanged: the host carried its row forward
    counts: dict[str, int] = {}
    merged = list(manifest.merge(previous, [host_a, host_b], counts))
    assert [(e.customer, e.run, e.data_sha256) for e in merged] == [
        ("1", "r1", "d"), ("2", "r2", "new"), ("3", "r2", "d"), ("4", "r1", "d")
    ]  # fmt: skip
    assert counts == {"kept": 2, "updated": 1, "added": 1, "conflicts": 0}  # 4: an unchanged copy
    counts = {}
    assert [e.run for e in manifest.merge([], [[entry("1", "a")], [entry("1", "b")]], counts)] == ["a"]
    assert counts["conflicts"] == 1


def test_load_stops_once_the_wanted_customers_are_found():
    def rows():
        yield entry("1", "r")
        yield entry("2", "r")
        raise AssertionError("read past the last wanted customer")

    assert list(manifest.load(rows(), wanted={"1", "2"})) == ["1", "2"]


def test_merge_run_publishes_over_a_folder_prefix_and_keeps_each_run_s_copy(tmp_path: Path):
    store = FolderPrefix(tmp_path)
    manifest.write_manifest(tmp_path / "r1" / manifest.host_manifest_name("algo-1"), [entry("1", "r1")])
    assert merge_run(store, "r1").rows == 1
    manifest.write_manifest(tmp_path / "r2" / manifest.host_manifest_name("algo-1"), [entry("2", "r2")])
    manifest.write_manifest(tmp_path / "r2" / manifest.host_manifest_name("algo-2"), [entry("3", "r2")])
    result = merge_run(store, "r2")
    assert (result.hosts, result.rows, result.counts["added"], result.counts["kept"]) == (2, 3, 2, 1)
    found = resolve(store, manifest.MANIFEST_NAME, ["1", "3", "nobody"])
    assert {c: e.target_model for c, e in found.items()} == {"1": "r1/1.tar.gz", "3": "r2/3.tar.gz"}
    assert [e.customer for e in manifest.read_file(tmp_path / "r1" / "manifest.csv.gz")] == ["1"]
    with pytest.raises(ManifestError, match="run r3 has no host manifests"):
        merge_run(store, "r3")


def test_fleetcast_manifest_merge_publishes_a_run_or_says_why_not(tmp_path: Path, caplog):
    from fleetcast.cli import main

    manifest.write_manifest(tmp_path / "r1" / manifest.host_manifest_name("algo-1"), [entry("1", "r1")])
    assert main(["manifest", "merge", "--models", str(tmp_path), "--run", "r1"]) == 0
    assert [e.target_model for e in manifest.read_file(tmp_path / manifest.MANIFEST_NAME)] == ["r1/1.tar.gz"]
    assert main(["manifest", "merge", "--models", str(tmp_path), "--run", "r2"]) == 1
    assert "run r2 has no host manifests" in caplog.text


def test_a_run_published_from_a_folder_not_named_after_it_is_refused(tmp_path: Path):
    """model.tar.gz of job `job-a` extracted as models/renamed/: its rows name job-a/<customer>.tar.gz,
    which does not exist, so publishing it would point every customer at a missing archive."""
    store = FolderPrefix(tmp_path)
    host_manifest = tmp_path / "renamed" / manifest.host_manifest_name("algo-1")
    manifest.write_manifest(host_manifest, [entry("1", "job-a")])
    missing = r"name run job-a, whose archive .*job-a/1\.tar\.gz does not exist"
    with pytest.raises(ManifestError, match=missing):
        merge_run(store, "renamed")
    assert not (tmp_path / manifest.MANIFEST_NAME).exists()
    assert not (tmp_path / "renamed" / manifest.MANIFEST_NAME).exists()


def test_rows_of_other_runs_are_checked_only_when_they_change_the_manifest(tmp_path: Path):
    store = FolderPrefix(tmp_path)
    manifest.write_manifest(tmp_path / "r1" / manifest.host_manifest_name("algo-1"), [entry("1", "r1")])
    merge_run(store, "r1")
    # A host of r2 kept customer 1 as the manifest has it: no archive is looked for (none exists here).
    rows = [entry("1", "r1"), entry("2", "r2")]
    manifest.write_manifest(tmp_path / "r2" / manifest.host_manifest_name("algo-1"), rows)
    assert merge_run(store, "r2").counts == {"kept": 1, "updated": 0, "added": 1, "conflicts": 0}
    # A row of another run that changes the manifest is published when its archive is there.
    (tmp_path / "r0").mkdir()
    (tmp_path / "r0" / archive.archive_name("3")).write_bytes(b"an archive")
    manifest.write_manifest(tmp_path / "r3" / manifest.host_manifest_name("algo-1"), [entry("3", "r0")])
    assert merge_run(store, "r3").counts["added"] == 1


class _Interleaved(FolderPrefix):
    """The prefix as one publisher sees it, with another run's whole publish landing between this one's read
    of the fleet manifest and its write (the moment two concurrent publishes race)."""

    def __init__(self, root: Path, other_run: str) -> None:
        super().__init__(root)
        self.other_run = other_run

    def put_if(self, name: str, source: Path, expected: str | None) -> None:
        if self.other_run:
            merge_run(FolderPrefix(self.root), self.other_run)
            self.other_run = ""
        super().put_if(name, source, expected)


@pytest.mark.parametrize("first", [False, True], ids=["over-a-manifest", "first-publish"])
def test_two_runs_publishing_at_once_both_land(tmp_path: Path, first: bool, caplog):
    if not first:
        manifest.write_manifest(tmp_path / "r0" / manifest.host_manifest_name("a"), [entry("0", "r0")])
        merge_run(FolderPrefix(tmp_path), "r0")
    manifest.write_manifest(tmp_path / "r1" / manifest.host_manifest_name("a"), [entry("1", "r1")])
    manifest.write_manifest(tmp_path / "r2" / manifest.host_manifest_name("a"), [entry("2", "r2")])
    result = merge_run(_Interleaved(tmp_path, "r2"), "r1")
    published = {e.customer: e.run for e in manifest.read_file(tmp_path / manifest.MANIFEST_NAME)}
    assert published == {**({} if first else {"0": "r0"}), "1": "r1", "2": "r2"}  # r2's row survived
    assert result.rows == len(published)
    assert "merging run r1 again over the newer manifest" in caplog.text


class _AlwaysOvertaken(FolderPrefix):
    """A prefix where another publisher replaces the fleet manifest before every write of this one."""

    def put_if(self, name: str, source: Path, expected: str | None) -> None:
        rival = self.root / "rival.csv.gz"
        manifest.write_manifest(rival, [entry("9", "r9")])
        FolderPrefix(self.root).put(name, rival)
        super().put_if(name, source, expected)


def test_a_publish_that_keeps_losing_the_race_gives_up_and_overwrites_nothing(tmp_path: Path, monkeypatch):
    from fleetcast import models_prefix

    manifest.write_manifest(tmp_path / "r1" / manifest.host_manifest_name("a"), [entry("1", "r1")])
    monkeypatch.setattr(models_prefix, "PUBLISH_ATTEMPTS", 3)
    with pytest.raises(ManifestError, match="was replaced while this run merged, 3 times"):
        merge_run(_AlwaysOvertaken(tmp_path), "r1")
    assert [e.run for e in manifest.read_file(tmp_path / manifest.MANIFEST_NAME)] == ["r9"]  # the rival's


def test_merge_can_list_the_published_archives_as_a_sagemaker_manifest_file(tmp_path: Path, caplog):
    import json

    from fleetcast.cli import main

    models = tmp_path / "models"
    manifest.write_manifest(
        models / "r1" / manifest.host_manifest_name("a"), [entry("1", "r1"), entry("2", "r1")]
    )
    main(["manifest", "merge", "--models", str(models), "--run", "r1"])
    manifest.write_manifest(models / "r2" / manifest.host_manifest_name("a"), [entry("2", "r2")])
    listing = tmp_path / "inputs" / "r2" / "models.manifest"
    args = ["manifest", "merge", "--models", str(models), "--run", "r2", "--sagemaker-manifest", str(listing)]
    assert main(args) == 0
    header, *keys = json.loads(listing.read_text())
    assert header == {"prefix": str(models)} and keys == ["r1/1.tar.gz", "r2/2.tar.gz"]  # what serves now
    manifest.write_manifest(models / "r3" / manifest.host_manifest_name("a"), [entry("3", "r3")])
    assert main([*args[:5], "r3", *args[6:]]) == 1  # the same file again: never over a job's input
    assert "exists already" in caplog.text
