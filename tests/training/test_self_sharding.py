"""Several hosts, one full channel: each customer is trained by exactly one host, the same one every time."""

from __future__ import annotations

import csv
import json
import logging
import random
import shutil
from pathlib import Path

import pytest

from fleetcast.cli import main
from fleetcast.training.config import ResourceConfig, host_of_customer
from tests.helpers import write_bucket_layout, write_folder_layout, write_hyperparameters

HOSTS = {2: ["algo-1", "algo-2"], 3: ["algo-1", "algo-2", "algo-3"]}


def test_host_of_customer_is_a_stable_fair_partition():
    ids = [str(i) for i in range(600)] + [f"customer-{i}" for i in range(600)]
    for hosts in HOSTS.values():
        owners = {c: host_of_customer(c, hosts) for c in ids}
        shuffled = random.Random(3).sample(hosts, len(hosts))
        assert owners == {c: host_of_customer(c, shuffled) for c in ids}  # host order does not matter
        counts = [list(owners.values()).count(h) for h in hosts]
        assert min(counts) > 0.8 * len(ids) / len(hosts)
        for customer in ids[:50]:  # each host agrees, alone, on who owns what
            claims = [ResourceConfig(h, hosts).owns(customer) for h in hosts]
            assert claims.count(True) == 1
    # Pinned: a change of hash would move customers between hosts of jobs already running.
    pinned = ["algo-1", "algo-2", "algo-2", "algo-1"]
    assert [host_of_customer(c, HOSTS[3]) for c in ("0", "1", "2", "customer-7")] == pinned
    assert host_of_customer("anything", ["algo-1"]) == "algo-1"


def test_shares_channel_only_when_several_hosts_see_it_all():
    one, two = ResourceConfig("algo-1", ["algo-1"]), ResourceConfig("algo-1", HOSTS[2])
    assert not one.shares_channel(None)
    assert two.shares_channel(None) and two.shares_channel("FullyReplicated")
    assert not two.shares_channel("ShardedByS3Key")


def lay_out_hosts(tmp_path: Path, hosts: list[str], distribution: str | None, writer=write_folder_layout):
    """One /opt/ml per host, each with the same full copy of one channel (what FullyReplicated delivers)."""
    source = tmp_path / "channel"
    writer(source, range(11))
    roots = {}
    for host in hosts:
        root = tmp_path / host
        (root / "input" / "config").mkdir(parents=True)
        shutil.copytree(source, root / "input" / "data" / "train")
        (root / "input" / "config" / "resourceconfig.json").write_text(
            json.dumps(
                {"current_host": host, "hosts": list(reversed(hosts)), "network_interface_name": "eth0"}
            )
        )
        channel = {"TrainingInputMode": "File", "ContentType": "text/csv"}
        if distribution:
            channel["S3DistributionType"] = distribution
        (root / "input" / "config" / "inputdataconfig.json").write_text(json.dumps({"train": channel}))
        write_hyperparameters(root, workers="1", holdout_days="0", uncertainty_samples="0")
        roots[host] = root
    return roots


def run_hosts(roots: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, set[str]]:
    """Run `train` once per host; returns the customers each host trained or resumed."""
    handled = {}
    monkeypatch.setenv("TRAINING_JOB_NAME", "job-1")  # SageMaker names the job alike on every host
    for host, root in roots.items():
        monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(root))
        assert main(["train"]) == 0
        with open(root / "output" / "data" / f"report-{host}.csv", newline="") as handle:
            handled[host] = {row["customer"] for row in csv.DictReader(handle)}
    return handled


@pytest.mark.parametrize("distribution", ["FullyReplicated", None], ids=["FullyReplicated", "unspecified"])
@pytest.mark.parametrize("count", [2, 3])
def test_each_customer_is_trained_by_exactly_one_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, count, distribution
):
    hosts = HOSTS[count]
    roots = lay_out_hosts(tmp_path, hosts, distribution)
    with caplog.at_level(logging.INFO, logger="fleetcast.train"):
        handled = run_hosts(roots, monkeypatch)
    every = {str(i) for i in range(11)}
    assert set().union(*handled.values()) == every
    assert sum(len(s) for s in handled.values()) == len(every)  # pairwise disjoint
    assert all(handled.values())  # 11 customers reach every one of 2-3 hosts with this hash
    for host, customers in handled.items():
        assert customers == {c for c in every if host_of_customer(c, hosts) == host}
        assert sorted(p.name for p in (roots[host] / "checkpoints").glob("*.tar.gz")) == sorted(
            f"{c}.tar.gz" for c in customers
        )
        summary = json.loads((roots[host] / "model" / f"fleet-summary-{host}.json").read_text())
        assert summary["customers"] == len(customers)
    assert f"this host trains {len(handled['algo-1'])} of the 11" in caplog.text

    # Stable: a second job over the same channel (its checkpoints wiped) splits it the same way.
    for root in roots.values():
        shutil.rmtree(root / "checkpoints")
    assert run_hosts(roots, monkeypatch) == handled


def test_bucket_files_are_shared_out_by_customer_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    roots = lay_out_hosts(tmp_path, HOSTS[2], "FullyReplicated", writer=write_bucket_layout)
    handled = run_hosts(roots, monkeypatch)
    assert set().union(*handled.values()) == {str(i) for i in range(11)}
    assert not handled["algo-1"] & handled["algo-2"]
    for host, root in roots.items():
        summary = json.loads((root / "model" / f"fleet-summary-{host}.json").read_text())
        assert summary["customers"] == len(handled[host])


def test_sharded_by_s3_key_input_is_used_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    roots = lay_out_hosts(tmp_path, HOSTS[2], "ShardedByS3Key")
    handled = run_hosts(roots, monkeypatch)
    assert handled["algo-1"] == handled["algo-2"] == {str(i) for i in range(11)}
