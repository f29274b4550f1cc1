"""`fleetcast split` as a Processing job on N instances: every input row lands in exactly one output row.

Each emulated instance gets what SageMaker gives a Processing container: its own /opt/ml (relocated by
SAGEMAKER_BASE_DIR) with `config/resourceconfig.json` and `config/processingjobconfig.json` (the very
request `launch process` sends), its input as the request's distribution deals it, and the request's
ContainerArguments on the command line. Afterwards every instance's outputs are "uploaded" into one S3-like
folder per ProcessingOutput, as SageMaker does: a key written by two instances fails the test.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pandas as pd
import pytest

from fleetcast.cli import main as cli_main
from fleetcast.data.customer_ids import safe_customer_id
from fleetcast.data.split import SUMMARY_FILE
from fleetcast.data.split.cluster import Instance, owner_of, read_instance
from fleetcast.local.sharding import assign_round_robin, host_names
from fleetcast.paths import SageMakerPaths
from launch.common import JobSpec, Layout
from launch.process import processing_request

HEADER = "customer_id,timestamp,consumption"
BAD_LINES = ["ghost,not a date,1", ",2022-01-01,1", "ghost,2022-01-02,-1", "x,2022-01-01,1,9"]


def raw_files(folder: Path, customers: int = 23, files: int = 5, seed: int = 11) -> tuple[list[Path], set]:
    """Raw CSVs, each customer in exactly one of them, plus the set of valid (id, time, value) rows."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    lines: dict[int, list[str]] = {i: [] for i in range(files)}
    valid = set()
    for c in range(customers):
        customer = f"c{c:03d}" if c % 7 else f"odd/id {c}"  # some ids must be renamed
        for day in rng.sample(range(1, 29), rng.randint(1, 6)):
            stamp, value = f"2022-02-{day:02d} 00:00:00", float(rng.randint(0, 999))
            lines[c % files].append(f'"{customer}",{stamp},{value}')
            valid.add((safe_customer_id(customer), stamp, value))
    lines[0].extend(BAD_LINES)  # rows split must count once across all instances, never write
    paths = []
    for i, body in lines.items():
        rng.shuffle(body)
        paths.append(folder / f"raw-{i}.csv")
        paths[-1].write_text("\n".join([HEADER, *body]) + "\n")
    return paths, valid


def request_for(instances: int, shard_input: bool, buckets: int) -> dict:
    job = JobSpec(
        name="split-test",
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/fleetcast:latest",
        role="arn:aws:iam::123456789012:role/fleetcast",
        layout=Layout(bucket="fleet-bucket", prefix="demo"),
        instance_type="ml.m5.xlarge",
        instance_count=instances,
        volume_gb=30,
        max_runtime_seconds=3600,
    )
    return processing_request(job, shard_input=shard_input, buckets=buckets)


def run_job(tmp: Path, raws: list[Path], request: dict, monkeypatch) -> dict[str, Path]:
    """Every instance of the job, one after another; returns each ProcessingOutput's merged "S3" folder."""
    hosts = host_names(request["ProcessingResources"]["ClusterConfig"]["InstanceCount"])
    (source,) = request["ProcessingInputs"]
    sharded = source["S3Input"]["S3DataDistributionType"] == "ShardedByS3Key"
    shards = assign_round_robin([p.name for p in raws], len(hosts))
    uploads = {
        o["OutputName"]: tmp / "s3" / o["OutputName"] for o in request["ProcessingOutputConfig"]["Outputs"]
    }
    for host in hosts:
        paths = SageMakerPaths(tmp / host)
        paths.processing_config_dir.mkdir(parents=True)
        resources = {"current_host": host, "hosts": hosts, "network_interface_name": "eth0"}
        paths.processing_resource_config_file.write_text(json.dumps(resources))
        paths.processing_job_config_file.write_text(json.dumps({**request, "ProcessingJobArn": "arn:test"}))
        channel = paths.in_container(source["S3Input"]["LocalPath"])
        channel.mkdir(parents=True)
        for raw in raws:
            if not sharded or raw.name in shards[host]:
                shutil.copy(raw, channel / raw.name)
        arguments = request["AppSpecification"]["ContainerArguments"]
        relocated = [str(paths.in_container(a)) if a.startswith("/opt/ml/") else a for a in arguments]
        monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(paths.base))
        assert cli_main(["split", *relocated]) == 0, host
        for output in request["ProcessingOutputConfig"]["Outputs"]:
            _upload(paths.in_container(output["S3Output"]["LocalPath"]), uploads[output["OutputName"]])
    return uploads


def _upload(local: Path, prefix: Path) -> None:
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        key = prefix / path.relative_to(local)
        assert not key.exists(), f"two instances wrote the key {key.relative_to(prefix)}"
        key.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, key)


def rows_in(channel: Path) -> list[tuple[str, str, float]]:
    """Every data row of the channel, as (customer, time, value); bucket and folder layouts alike."""
    rows = []
    for path in sorted(channel.rglob("*.csv")):
        frame = pd.read_csv(path, dtype={"customer_id": str, "timestamp": str})
        customers = frame["customer_id"] if "customer_id" in frame else [path.parent.name] * len(frame)
        rows.extend(zip(customers, frame["timestamp"], frame["consumption"].astype(float), strict=True))
    return rows


@pytest.mark.parametrize("buckets", [0, 3])
@pytest.mark.parametrize("shard_input", [False, True], ids=["replicated", "sharded"])
@pytest.mark.parametrize("instances", [1, 2, 3, 4])
def test_every_input_row_lands_in_exactly_one_output_row(
    tmp_path: Path, monkeypatch, instances: int, shard_input: bool, buckets: int
) -> None:
    raws, valid = raw_files(tmp_path / "raw")
    uploads = run_job(tmp_path, raws, request_for(instances, shard_input, buckets), monkeypatch)
    rows = rows_in(uploads["customers"])
    assert len(rows) == len(set(rows)) == len(valid)  # no row twice (all valid rows are distinct)
    assert set(rows) == valid  # and none lost
    keys = sorted(p.relative_to(uploads["customers"]).as_posix() for p in uploads["customers"].rglob("*.csv"))
    if buckets:
        prefixes = [f"part-{h}-" for h in host_names(instances)] if instances > 1 else ["part-0"]
        assert all(k.startswith(tuple(prefixes)) and "/" not in k for k in keys), keys
    else:
        assert all(k.endswith("/data.csv") for k in keys)
    # The channel holds customer data only; the reports went to their own output, one set per instance.
    assert not [p for p in uploads["customers"].rglob("*") if p.is_file() and p.suffix != ".csv"]
    summaries = [json.loads(p.read_text()) for p in sorted(uploads["reports"].glob("split_summary*.json"))]
    assert len(summaries) == instances
    total = sum(len(r.read_text().splitlines()) - 1 for r in raws)
    assert sum(s["rows_read"] - s["rows_of_other_hosts"] for s in summaries) == total
    assert sum(s["rows_written"] for s in summaries) == len(valid)
    assert sum(s["rows_dropped"] for s in summaries) == len(BAD_LINES)
    assert sum(s["customers"] for s in summaries) == len({c for c, _, _ in valid})


def test_an_instance_reads_its_place_from_the_processing_config(tmp_path: Path) -> None:
    paths = SageMakerPaths(tmp_path)
    assert read_instance(paths, [paths.processing_input_dir]) == Instance()  # no config: a lone instance
    paths.processing_config_dir.mkdir()
    paths.processing_resource_config_file.write_text(
        json.dumps({"current_host": "algo-2", "hosts": ["algo-2", "algo-1"]})
    )
    paths.processing_job_config_file.write_text(json.dumps(request_for(2, shard_input=True, buckets=0)))
    instance = read_instance(paths, [paths.processing_input_dir])
    assert (instance.host, instance.hosts, instance.input_sharded) == ("algo-2", ("algo-1", "algo-2"), True)
    paths.processing_job_config_file.write_text(json.dumps(request_for(2, shard_input=False, buckets=0)))
    instance = read_instance(paths, [paths.processing_input_dir / "raw"])  # a folder inside the LocalPath
    assert instance.shares_input
    assert {owner_of(f"c{i}", instance.hosts) for i in range(50)} == {"algo-1", "algo-2"}
    assert instance.owns("") is (owner_of("", instance.hosts) == "algo-2") is False  # algo-1 counts those


def test_an_instance_without_customers_of_its_own_succeeds(tmp_path: Path, monkeypatch) -> None:
    raws, valid = raw_files(tmp_path / "raw", customers=1, files=1)
    uploads = run_job(tmp_path, raws, request_for(3, shard_input=False, buckets=2), monkeypatch)
    assert set(rows_in(uploads["customers"])) == valid
    (sharded_tmp := tmp_path / "sharded").mkdir()
    uploads = run_job(sharded_tmp, raws, request_for(2, shard_input=True, buckets=0), monkeypatch)
    assert set(rows_in(uploads["customers"])) == valid  # algo-2's shard held no raw file at all
    assert (uploads["reports"] / "split_summary-algo-2.json").is_file()


def test_a_lone_instance_keeps_todays_names(tmp_path: Path, monkeypatch) -> None:
    raws, _ = raw_files(tmp_path / "raw", customers=4, files=1)
    uploads = run_job(tmp_path, raws, request_for(1, shard_input=False, buckets=2), monkeypatch)
    assert sorted(p.name for p in uploads["customers"].iterdir()) <= ["part-00000.csv", "part-00001.csv"]
    assert sorted(p.name for p in uploads["reports"].iterdir())[-1] == SUMMARY_FILE


def test_a_sharded_instance_given_no_input_folder_at_all_has_nothing_to_do(
    tmp_path: Path, monkeypatch
) -> None:
    request = request_for(2, shard_input=True, buckets=2)
    paths = SageMakerPaths(tmp_path / "algo-2")
    paths.processing_config_dir.mkdir(parents=True)
    paths.processing_resource_config_file.write_text(
        json.dumps({"current_host": "algo-2", "hosts": host_names(2)})
    )
    paths.processing_job_config_file.write_text(json.dumps(request))
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(paths.base))
    assert cli_main(["split", "--buckets", "2"]) == 0  # /opt/ml/processing/input was never made
    summary = json.loads((paths.processing_reports_dir / "split_summary-algo-2.json").read_text())
    assert (summary["inputs"], summary["rows_read"], summary["customers"]) == ([], 0, 0)
    assert list(paths.processing_output_dir.iterdir()) == []
    # Alone, or with replicated input, a missing input is still the error it always was.
    paths.processing_job_config_file.write_text(json.dumps(request_for(2, shard_input=False, buckets=2)))
    assert cli_main(["split", "--buckets", "2"]) == 2
