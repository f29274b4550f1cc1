"""The pipeline's bookkeeping at fleet scale: manifests, sharding, resume planning and S3 requests.

    python -m bench.scale [--sizes 10000,100000,1000000] [--hosts 10] [--changed 0.01]

For each fleet size N, every step runs in its own child process (so each peak RSS is that step's alone):

- `write`: the fleet manifest of N customers, written by model/manifest.py (time, size on disk);
- `formats` (at the largest N only): the same rows as sorted CSV.gz at gzip levels 1 (the chosen format)
  and 6, as JSON lines gzipped (the baseline) and as Parquet (pyarrow, a development dependency only):
  size, write and full-load time, each as a ratio to JSON lines;
- `load`: the whole manifest into a dict (what the local endpoint and a whole-fleet resume hold);
- `shard`: the sharding plan over the hosts: ShardedByS3Key's round robin over N object keys
  (local/sharding.py) and the self-sharding hash of every id (training/config.py);
- `merge`: publishing a run over a folder prefix (models_prefix.merge_run): the previous manifest and one
  host manifest per host, of which `--changed` of the customers are the run's new versions;
- `resume`: resume planning for the whole fleet in one process, as `train` does it: the previous manifest
  loaded for the host's customers (training/resume.load_previous), then each customer's data hash
  (training/inputs.data_fingerprint over 30 rows) compared with its row; `--changed` of them changed;
- `s3`: S3 requests of one run against a moto server (ThreadedMotoServer on 127.0.0.1): launch's checks
  before the job, each host's downloads as SageMaker makes them (its ShardedByS3Key shard of customers/, the
  manifest channel, the run's checkpoint prefix), its uploads (the changed customers' archives and its host
  manifest; archive bodies are placeholders, the requests are what is counted), and the publish step. It
  checks that no host downloads anything but the manifest and its own shard.

Each step's time is wall-clock time, with the CPU time of the same stretch beside it (on a shared machine
the wall time is the CPU time plus the wait for a core). Then it prints, per step, the growth of CPU time
and peak RSS from each size to the next, and checks it is no faster than linear (at most the size ratio,
with 50 % slack for timing noise), and the issue's targets at 1,000,000: resume planning <= 60 s and
<= 2 GB; the manifest <= 100 MB and loaded in <= 10 s (wall time).

SPLIT_ROW: the split helper adds its bucket-mode split row (see the SPLIT_ROW comment at STEPS).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from fleetcast.model import archive, manifest
from fleetcast.model.manifest import MANIFEST_NAME, ManifestEntry

SETTINGS = "0123456789abcdef"
ROWS = 30
SLACK = 1.5
TARGETS_AT = 1_000_000
GRID = np.arange(np.datetime64("2023-01-01"), np.datetime64("2023-01-01") + ROWS).astype("datetime64[ns]")


# --------------------------------------------------------------------------------------- the fleet's data
def customers(count: int) -> list[str]:
    """Ids as `split` names them (the raw ids 0..N-1), sorted as the manifest sorts them."""
    return sorted(str(i) for i in range(count))


def is_changed(customer: str, share: float) -> bool:
    """A fixed `share` of the customers, spread over the id space (by a hash, not by position)."""
    digest = hashlib.blake2b(customer.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") < share * 2**32


def values(customer: str, changed: bool) -> np.ndarray:
    """Every customer's own series (so every data hash is distinct, as in a real fleet)."""
    return 100.0 + int(customer) / 7.0 + np.arange(ROWS) * 0.5 + (1.0 if changed else 0.0)


def fingerprint(customer: str, changed: bool) -> str:
    from fleetcast.training.inputs import History, data_fingerprint

    return data_fingerprint(History(ds=GRID, y=values(customer, changed)))


def entry(customer: str, run: str, data_sha256: str) -> ManifestEntry:
    """A row with metrics as varied as real ones (four uniform draws per customer, from a hash of its id)."""
    draws = (
        np.frombuffer(hashlib.blake2b(customer.encode(), digest_size=16).digest(), dtype=np.uint32) / 2**32
    )
    metrics = {"smape": 1 + 20 * draws[0], "naive_smape": 1 + 30 * draws[1], "mae": 50 * draws[2],
               "naive_mae": 70 * draws[3]}  # fmt: skip
    return manifest.entry_for(customer, run, data_sha256, SETTINGS, "configured", metrics)


def host_of(index: int, hosts: int) -> str:
    return f"algo-{index % hosts + 1}"


# ----------------------------------------------------------------------------------------------- the steps
def step_write(work: Path, count: int, hosts: int, share: float) -> dict[str, Any]:
    """The previous manifest (timed), and the run's host manifests the later steps read (not timed)."""
    ids = customers(count)
    hashes = [fingerprint(c, False) for c in ids]
    began = time.perf_counter()
    cpu_began = time.process_time()
    path, rows = manifest.write_manifest(
        work / "models" / MANIFEST_NAME, (entry(c, "run-1", h) for c, h in zip(ids, hashes, strict=True))
    )
    seconds = time.perf_counter() - began
    cpu_seconds = time.process_time() - cpu_began
    per_host: dict[str, list[ManifestEntry]] = {}
    for index, customer in enumerate(ids):
        changed = is_changed(customer, share)
        data = fingerprint(customer, True) if changed else hashes[index]
        per_host.setdefault(host_of(index, hosts), []).append(
            entry(customer, "run-2" if changed else "run-1", data)
        )
    for host, rows_of_host in per_host.items():
        manifest.write_manifest(work / "models" / "run-2" / manifest.host_manifest_name(host), rows_of_host)
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "rows": rows, "bytes": path.stat().st_size}


def step_load(work: Path, count: int, hosts: int, share: float) -> dict[str, Any]:
    began = time.perf_counter()
    cpu_began = time.process_time()
    loaded = manifest.load(manifest.read_file(work / "models" / MANIFEST_NAME))
    seconds = time.perf_counter() - began
    cpu_seconds = time.process_time() - cpu_began
    assert len(loaded) == count
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "rows": len(loaded)}


def step_shard(work: Path, count: int, hosts: int, share: float) -> dict[str, Any]:
    from fleetcast.local.sharding import assign_round_robin
    from fleetcast.training.config import host_of_customer

    ids = customers(count)
    names = [f"algo-{i}" for i in range(1, hosts + 1)]
    began = time.perf_counter()
    cpu_began = time.process_time()
    shards = assign_round_robin([f"{c}/data.csv" for c in ids], hosts)
    owners = Counter(host_of_customer(c, names) for c in ids)
    seconds = time.perf_counter() - began
    cpu_seconds = time.process_time() - cpu_began
    sizes = [len(keys) for keys in shards.values()]
    assert sum(sizes) == count and sum(owners.values()) == count
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "largest_share": max(*sizes, *owners.values()) / (count / hosts),
    }


def step_merge(work: Path, count: int, hosts: int, share: float) -> dict[str, Any]:
    from fleetcast.models_prefix import FolderPrefix, merge_run

    began = time.perf_counter()
    cpu_began = time.process_time()
    result = merge_run(FolderPrefix(work / "models"), "run-2")
    seconds = time.perf_counter() - began
    cpu_seconds = time.process_time() - cpu_began
    assert result.rows == count and result.hosts == hosts
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "updated": result.counts["updated"],
        "kept": result.counts["kept"],
    }


def step_resume_changed(work: Path, count: int, hosts: int, share: float) -> dict[str, Any]:
    """Resume planning against the manifest before the run: `share` of the customers have new data."""
    from fleetcast.paths import SageMakerPaths
    from fleetcast.training.resume import load_previous

    paths = SageMakerPaths(work / "opt_ml")
    channel = paths.manifest_channel_dir
    channel.mkdir(parents=True, exist_ok=True)
    (channel / MANIFEST_NAME).unlink(missing_ok=True)
    os.link(work / "models" / "run-1.csv.gz", channel / MANIFEST_NAME)
    ids = customers(count)
    fingerprint("0", False)  # imports what hashing needs, outside the timing
    began = time.perf_counter()
    cpu_began = time.process_time()
    previous = load_previous(paths, lambda: set(ids))
    to_train = 0
    for customer in ids:
        row = previous.get(customer)
        current = fingerprint(customer, is_changed(customer, share))
        to_train += row is None or not row.is_current(current, SETTINGS)
    seconds = time.perf_counter() - began
    cpu_seconds = time.process_time() - cpu_began
    expected = sum(is_changed(c, share) for c in ids)
    assert to_train == expected, (to_train, expected)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "to_train": to_train,
        "share": round(to_train / count, 4),
    }


def step_formats(work: Path, count: int, hosts: int, share: float) -> dict[str, Any]:
    rows = list(manifest.read_file(work / "models" / "run-1.csv.gz"))
    results: dict[str, Any] = {}

    def measure(name: str, write: Callable[[Path], None], read: Callable[[Path], int], suffix: str) -> None:
        path = work / f"format{suffix}"
        began = time.perf_counter()
        write(path)
        written = time.perf_counter() - began
        began = time.perf_counter()
        assert read(path) == count
        results[name] = {
            "bytes": path.stat().st_size,
            "write_s": written,
            "load_s": time.perf_counter() - began,
        }
        path.unlink()

    def jsonl_write(path: Path) -> None:
        with gzip.open(path, "wt", compresslevel=6) as out:
            for row in rows:
                out.write(json.dumps(row._asdict()) + "\n")

    def jsonl_read(path: Path) -> int:
        with gzip.open(path, "rt") as handle:
            return len({(r := ManifestEntry(**json.loads(line))).customer: r for line in handle})

    def csv_at(level: int) -> Callable[[Path], None]:
        def write(path: Path) -> None:
            saved = manifest.COMPRESS_LEVEL
            manifest.COMPRESS_LEVEL = level
            try:
                manifest.write_manifest(path, rows)
            finally:
                manifest.COMPRESS_LEVEL = saved

        return write

    def csv_read(path: Path) -> int:
        return len(manifest.load(manifest.read_file(path)))

    measure("jsonl.gz (baseline)", jsonl_write, jsonl_read, ".jsonl.gz")
    for level in (1, 6):
        chosen = " (chosen)" if level == manifest.COMPRESS_LEVEL else ""
        measure(f"csv.gz level {level}{chosen}", csv_at(level), csv_read, ".csv.gz")
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        results["parquet"] = "pyarrow is not installed (requirements/dev.txt has it): not measured"
    else:

        def parquet_write(path: Path) -> None:
            table = pa.table({name: [getattr(r, name) for r in rows] for name in manifest.COLUMNS})
            pq.write_table(table, path, compression="zstd")

        def parquet_read(path: Path) -> int:
            table = pq.read_table(path).to_pylist()
            return len({r["customer"]: ManifestEntry(**r) for r in table})

        measure("parquet zstd", parquet_write, parquet_read, ".parquet")
    return {"seconds": 0.0, "formats": results}


def step_s3(work: Path, count: int, hosts: int, share: float) -> dict[str, Any]:
    """One run's S3 requests against moto, counted per operation and per client (launch, each host)."""
    import boto3
    from botocore.config import Config
    from moto.server import ThreadedMotoServer

    from fleetcast.local.sharding import assign_round_robin
    from fleetcast.models_prefix import S3Prefix, merge_run

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        url = f"http://127.0.0.1:{server._server.server_port}"  # moto exposes no getter
        os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})
        bucket, prefix = "fleetcast-bench", "fleet"
        config = Config(retries={"mode": "standard"}, max_pool_connections=20)

        def client(counts: Counter[str], keys: list[str] | None = None) -> Any:
            made = boto3.client("s3", endpoint_url=url, region_name="us-east-1", config=config)

            def count(params: dict[str, Any], model: Any, **_: Any) -> None:
                counts[model.name] += 1
                if keys is not None and model.name == "GetObject":
                    keys.append(params["Key"])

            made.meta.events.register("provide-client-params.s3.*", count)
            return made

        setup = client(Counter())
        setup.create_bucket(Bucket=bucket)
        # The channel in bucket mode (split --buckets): whole customers per object, at least one per host.
        buckets = max(hosts, count // 10_000)
        data_keys = [f"{prefix}/customers/part-{b:05d}.csv" for b in range(buckets)]
        for key in data_keys:
            setup.put_object(Bucket=bucket, Key=key, Body=b"customer_id,timestamp,consumption\n")
        setup.upload_file(str(work / "models" / "run-1.csv.gz"), bucket, f"{prefix}/models/{MANIFEST_NAME}")
        run = "run-2"
        host_files = sorted((work / "models" / "run-2").glob(f"{manifest.HOST_MANIFEST_PREFIX}*"))

        launch: Counter[str] = Counter()
        launcher = client(launch)
        launcher.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/customers/", MaxKeys=hosts)
        launcher.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/models/{MANIFEST_NAME}", MaxKeys=1)

        shards = assign_round_robin(data_keys, hosts)
        per_host: dict[str, Counter[str]] = {}
        foreign_gets = 0
        changed = [c for c in customers(count) if is_changed(c, share)]
        clients = {}
        # Every host starts at once: SageMaker's downloads for each (its shard of customers/, the manifest
        # channel, the run's checkpoint prefix) happen before any host uploads anything.
        for host, shard in shards.items():
            counts: Counter[str] = Counter()
            got: list[str] = []
            s3 = clients[host] = client(counts, got)
            per_host[host] = counts
            s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/customers/")
            for key in shard:
                s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            s3.get_object(Bucket=bucket, Key=f"{prefix}/models/{MANIFEST_NAME}")["Body"].read()
            restored = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/models/{run}/").get("KeyCount", 0)
            assert restored == 0, "a new run's checkpoint prefix is empty"
            allowed = {*shard, f"{prefix}/models/{MANIFEST_NAME}"}
            foreign_gets += sum(key not in allowed for key in got)
        # Then each host's uploads: the archives of its changed customers, and its host manifest.
        for index, host in enumerate(shards):
            for customer in changed[index::hosts]:
                key = f"{prefix}/models/{run}/{archive.archive_name(customer)}"
                clients[host].put_object(Bucket=bucket, Key=key, Body=b"x")
            upload = host_files[index]
            clients[host].upload_file(str(upload), bucket, f"{prefix}/models/{run}/{upload.name}")

        publish: Counter[str] = Counter()
        result = merge_run(S3Prefix(bucket, f"{prefix}/models", client(publish)), run)
        assert result.rows == count
    finally:
        server.stop()
    hosts_total = sum(per_host.values(), Counter())
    largest = max(per_host.values(), key=lambda c: sum(c.values()))
    return {
        "seconds": 0.0,
        "launch": dict(launch),
        "hosts_total": dict(hosts_total),
        "busiest_host": dict(largest),
        "publish": dict(publish),
        "requests": sum(launch.values()) + sum(hosts_total.values()) + sum(publish.values()),
        "host_gets": hosts_total["GetObject"],
        "foreign_gets": foreign_gets,
        "archives_put": len(changed),
    }


def step_keep(work: Path, count: int, hosts: int, share: float) -> dict[str, Any]:
    """Keep the manifest before the run as run-1.csv.gz for the steps that need it (not measured)."""
    os.link(work / "models" / MANIFEST_NAME, work / "models" / "run-1.csv.gz")
    return {"seconds": 0.0}


# SPLIT_ROW: the split helper's bucket-mode split step joins here (and in MEASURED and main's step list).
STEPS: dict[str, Callable[[Path, int, int, float], dict[str, Any]]] = {
    "write": step_write,
    "keep": step_keep,
    "load": step_load,
    "shard": step_shard,
    "merge": step_merge,
    "resume": step_resume_changed,
    "s3": step_s3,
    "formats": step_formats,
}
MEASURED = ("write", "load", "shard", "merge", "resume")


def run_child(step: str, work: Path, count: int, hosts: int, share: float) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.scale", "--child", step, "--work", str(work),
               "--sizes", str(count), "--hosts", str(hosts), "--changed", str(share)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"step {step} at {count} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(step: str, work: Path, count: int, hosts: int, share: float) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = STEPS[step](work, count, hosts, share)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["start_rss_mb"] = before / 1024
    print(json.dumps(result))


def growth_lines(
    results: dict[int, dict[str, dict[str, Any]]], sizes: list[int]
) -> Iterator[tuple[str, bool]]:
    for small, large in itertools.pairwise(sizes):
        factor = large / small
        for step in MEASURED:
            a, b = results[small][step], results[large][step]
            time_ratio = b["cpu_seconds"] / max(a["cpu_seconds"], 1e-3)
            rss_ratio = (b["peak_rss_mb"] - b["start_rss_mb"]) / max(
                a["peak_rss_mb"] - a["start_rss_mb"], 1.0
            )
            ok = time_ratio <= factor * SLACK and rss_ratio <= factor * SLACK
            verdict = "ok" if ok else "FASTER THAN LINEAR"
            yield (f"  {step:<7} {small:>9,} -> {large:>9,} (x{factor:g}): time x{time_ratio:.2f}, "
                   f"RSS above start x{rss_ratio:.2f}  {verdict}", ok)  # fmt: skip


def report_step(count: int, step: str, outcome: dict[str, Any]) -> None:
    hidden = ("seconds", "cpu_seconds", "peak_rss_mb", "start_rss_mb")
    extra = {k: v for k, v in outcome.items() if k not in hidden}
    rss = f"peak RSS {outcome['peak_rss_mb']:7.1f} MB (start {outcome['start_rss_mb']:.0f})"
    took = f"{outcome['seconds']:8.2f} s ({outcome['cpu_seconds']:.2f} s CPU)"
    print(f"{count:>9,} {step:<7} {took}  {rss}  {json.dumps(extra)}", flush=True)


def report_s3(count: int, s3: dict[str, Any]) -> bool:
    print(f"{count:>9,} s3      {s3['requests']} requests: launch {s3['launch']}, hosts {s3['hosts_total']}, "
          f"busiest host {s3['busiest_host']}, publish {s3['publish']}; archives put "
          f"{s3['archives_put']}; GETs outside a host's shard and the manifest: {s3['foreign_gets']}",
          flush=True)  # fmt: skip
    return s3["foreign_gets"] == 0


def report_formats(count: int, formats: dict[str, Any]) -> None:
    base = formats["jsonl.gz (baseline)"]
    print(f"{count:>9,} manifest formats (ratio to JSON lines):")
    for name, measured in formats.items():
        if isinstance(measured, str):
            print(f"    {name}: {measured}")
            continue
        size, write, load = measured["bytes"], measured["write_s"], measured["load_s"]
        print(f"    {name:<24} {size / 1e6:7.1f} MB (x{size / base['bytes']:.2f}), "
              f"write {write:.2f} s (x{write / base['write_s']:.2f}), "
              f"load {load:.2f} s (x{load / base['load_s']:.2f})")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.child:
        child(args.child, args.work, sizes[0], args.hosts, args.changed)
        return 0

    print(
        f"bench.scale: {args.hosts} hosts, {args.changed:.0%} changed, load average {os.getloadavg()[0]:.2f}"
    )
    results: dict[int, dict[str, dict[str, Any]]] = {}
    ok = True
    with tempfile.TemporaryDirectory(prefix="fleetcast-scale-") as temp:
        for count in sizes:
            work = Path(temp) / str(count)
            work.mkdir()
            steps = ["write", "keep", "load", "shard", "merge", "resume", "s3"]
            if count == max(sizes):
                steps.append("formats")
            results[count] = {}
            for step in steps:
                results[count][step] = outcome = run_child(step, work, count, args.hosts, args.changed)
                if step in MEASURED:
                    report_step(count, step, outcome)
            ok &= report_s3(count, results[count]["s3"])
            if "formats" in results[count]:
                report_formats(count, results[count]["formats"]["formats"])
    print("growth from each size to the next, in CPU time (wall time on a shared machine measures the "
          "neighbours too) and peak RSS; no faster than linear: at most the size ratio x1.5:")  # fmt: skip
    for line, good in growth_lines(results, sizes):
        print(line)
        ok &= good
    if TARGETS_AT in results:
        at = results[TARGETS_AT]
        resume, load = at["resume"], at["load"]
        print(f"at {TARGETS_AT:,}: resume planning {resume['seconds']:.1f} s ({resume['cpu_seconds']:.1f} s "
              f"CPU), manifest load {load['seconds']:.1f} s ({load['cpu_seconds']:.1f} s CPU)")  # fmt: skip
        checks = [
            ("resume planning <= 60 s", at["resume"]["seconds"] <= 60),
            ("resume planning <= 2 GB RSS", at["resume"]["peak_rss_mb"] <= 2048),
            ("manifest <= 100 MB", at["write"]["bytes"] <= 100e6),
            ("manifest loads in <= 10 s", at["load"]["seconds"] <= 10),
            ("a rerun downloads only the manifest and its shard", at["s3"]["foreign_gets"] == 0),
        ]
        for name, passed in checks:
            print(f"target at {TARGETS_AT:,}: {name}: {'met' if passed else 'MISSED'}")
            ok &= passed
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
