"""Two runs publishing into the same S3 models prefix at once (against moto): S3's conditional PUT makes
the later writer merge again, so both runs' rows land in the fleet manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetcast.model import manifest
from fleetcast.models_prefix import S3Prefix, merge_run

pytestmark = pytest.mark.slow  # a moto server


class Interleaved(S3Prefix):
    """The prefix as run r1's publisher sees it, with run r2's whole publish landing between r1's read of
    the fleet manifest and r1's write."""

    other_run = "r2"

    def put_if(self, name: str, source: Path, expected: str | None) -> None:
        if self.other_run:
            merge_run(S3Prefix(self.bucket, self.prefix, self.client), self.other_run)
            self.other_run = ""
        super().put_if(name, source, expected)


@pytest.mark.parametrize("first", [False, True], ids=["over-a-manifest", "first-publish"])
def test_two_runs_publishing_at_once_both_land_in_s3(clients, names, tmp_path: Path, first: bool):
    s3 = clients["s3"]
    s3.create_bucket(Bucket=names.bucket)
    runs = ["r1", "r2"] if first else ["r0", "r1", "r2"]
    for run in runs:
        host = tmp_path / run / manifest.host_manifest_name("algo-1")
        manifest.write_manifest(host, [manifest.entry_for(run[1:], run, "d", "s", "configured", None)])
        s3.upload_file(str(host), names.bucket, f"{names.prefix}/models/{run}/{host.name}")
    if not first:
        merge_run(S3Prefix(names.bucket, f"{names.prefix}/models", s3), "r0")
    merge_run(Interleaved(names.bucket, f"{names.prefix}/models", s3), "r1")
    body = s3.get_object(Bucket=names.bucket, Key=f"{names.prefix}/models/manifest.csv.gz")["Body"]
    published = {entry.customer: entry.run for entry in manifest.iter_entries(body)}
    assert published == {run[1:]: run for run in runs}  # r2's row survived r1's publish


def test_a_publish_lists_the_serving_archives_in_s3_once(clients, names, tmp_path: Path, moto: str):
    import json

    from fleetcast.cli import main

    s3 = clients["s3"]
    s3.create_bucket(Bucket=names.bucket)
    host = tmp_path / manifest.host_manifest_name("algo-1")
    manifest.write_manifest(host, [manifest.entry_for("c1", "r1", "d", "s", "configured", None)])
    s3.upload_file(str(host), names.bucket, f"{names.prefix}/models/r1/{host.name}")
    listing = f"s3://{names.bucket}/{names.prefix}/forecast-inputs/r1/models.manifest"
    args = ["manifest", "merge", "--models", f"s3://{names.bucket}/{names.prefix}/models", "--run", "r1"]
    args += ["--sagemaker-manifest", listing, "--s3-endpoint-url", moto]
    assert main(args) == 0
    body = s3.get_object(Bucket=names.bucket, Key=f"{names.prefix}/forecast-inputs/r1/models.manifest")[
        "Body"
    ]
    assert json.loads(body.read()) == [
        {"prefix": f"s3://{names.bucket}/{names.prefix}/models/"},
        "r1/c1.tar.gz",
    ]
    assert main(args) == 1  # a second publish of the run does not replace a list a job may be reading


def test_fleetcast_manifest_merge_names_an_s3_error_in_one_line(moto, caplog):
    from fleetcast.cli import main

    assert main(["manifest", "merge", "--models", "s3://no-such-bucket-here/demo/models", "--run", "r1"]) == 1
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert record.getMessage().startswith("cannot publish run r1 into s3://no-such-bucket-here/demo/models:")
    assert "NoSuchBucket" in record.getMessage() and record.exc_info is None
