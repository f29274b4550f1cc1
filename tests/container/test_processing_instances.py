"""The real image as a multi-instance Processing job: local_test/process_multihost_local.sh runs the split
step on 3 containers from `launch process`'s own request, and fails on a key written twice or a row lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.container

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "local_test" / "process_multihost_local.sh"


@pytest.mark.parametrize(
    ("buckets", "shard"), [("4", []), ("0", ["--shard-input"])], ids=["replicated-buckets", "sharded-folders"]
)
def test_three_instances_write_disjoint_keys_and_lose_no_row(docker, image, tmp_path, buckets, shard) -> None:
    env = {**docker.env, "WORK_DIR": str(tmp_path / "job"), "PYTHON": sys.executable}
    run = subprocess.run(
        ["bash", str(SCRIPT), image.tag, "3", "30", buckets, *shard],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "rows in: 900, rows out: 900, keys written twice: 0" in run.stdout
    reports = sorted(p.name for p in (tmp_path / "job" / "s3" / "reports").iterdir())
    assert reports == [f"split_summary-algo-{i}.json" for i in (1, 2, 3)]
    channel = tmp_path / "job" / "s3" / "customers"
    assert all(p.suffix == ".csv" for p in channel.rglob("*") if p.is_file())  # customer data only
