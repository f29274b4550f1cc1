"""Serving baseline: the real MMS container behind the local multi-model endpoint, called with boto3.

    python -m bench.serving [--models 100] [--clients 8] [--warm-requests 200] [--throughput-requests 800]
    python -m bench.serving --scale 1000,10000,100000 [--pool 20] [--memory-mb 4096]
    python -m bench.serving --store 100000

Store mode (`--store N`) times the registry alone, in-process, with a real compiled document: SQLite in
/dev/shm (what the server uses) against the previous design, one file per model with a directory scan
per operation (timed up to 10,000 entries: it is quadratic).

Scale mode (`--scale`) measures the lean server alone, at fleet size: one server (2 workers) under a
memory budget loads distinct model names (over a pool of real trained archives, which ship compiled.json
as training writes them) up to each size in turn, and at each size prints RSS and /dev/shm per model, the
load rate and the warm invoke p50/p99 (keep-alive client, period 7 with intervals). First, its baseline:
one fresh server loads the same pool as archives without compiled.json (model.json compiled at each
load, as before) and with it, in alternating rounds, and prints both rates and their ratio.

In one run: cold invoke (a never-loaded model: download + `POST /models` + first predict), warm invoke
p50/p99 (`period=7` with intervals), requests/s with N concurrent clients over all models once they are
loaded (and while they load), and RSS per loaded model (the MMS process tree's RSS / loaded models).
These are the numbers the lean server must beat. Everything listens on 127.0.0.1; every loop is bounded
in count and in time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import urllib3

from fleetcast.data.generate import customer_series
from fleetcast.local.model_cache import model_id
from fleetcast.logs import quiet_third_party
from fleetcast.model import archive
from fleetcast.model.settings import ProphetSettings
from fleetcast.serving.environment import MEMORY_ENV
from fleetcast.serving.safe_tar import safe_extract
from tests.support.servers import Server, start_lean, start_local_endpoint, start_mms

PHASE_TIMEOUT_S = 900
# ENVIRONMENT.md measured ~140 MB per loaded model under MMS; keep headroom for the rest of the machine.
ASSUMED_MB_PER_MODEL = 180
HEADROOM_MB = 3000


def build_models(directory: Path, count: int, rows: int) -> None:
    from tests.serving.models import archive_model

    quiet_third_party()
    grid = pd.date_range("2022-01-01", periods=365, freq="D")
    settings = ProphetSettings()  # the training defaults: 1,000 uncertainty samples, as served in practice
    for customer in range(count):
        stamps, values = customer_series(customer, 42, grid, rows)
        archive_model(directory, str(customer), pd.DataFrame({"ds": stamps, "y": values}), settings)


def tree_rss_mb(pid: int) -> float:
    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 1024 / 1024


def runtime_client(url: str, pool: int) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(retries={"total_max_attempts": 1}, max_pool_connections=pool, read_timeout=120),
    )


BODY = json.dumps({"period": 7, "intervals": True}).encode()


def invoke(client: Any, customer: int) -> tuple[float, dict[str, str]]:
    began = time.perf_counter()
    response = client.invoke_endpoint(
        EndpointName="bench",
        TargetModel=f"{customer}.tar.gz",
        ContentType="application/json",
        Accept="application/json",
        Body=BODY,
    )
    payload = json.loads(response["Body"].read())
    elapsed = (time.perf_counter() - began) * 1000.0
    if len(payload["forecast"]) != 7:
        raise RuntimeError(f"unexpected answer for customer {customer}: {payload}")
    return elapsed, response["ResponseMetadata"]["HTTPHeaders"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def direct_versus_endpoint(mms_port: int, url: str, requests: int) -> tuple[list[float], list[float]]:
    """Where warm time goes: the same request straight to the container and to the endpoint without
    boto3 (no signing or parsing), alternating so that both see the same machine load."""
    http = urllib3.PoolManager()
    container_url = f"http://127.0.0.1:{mms_port}/models/{model_id('0.tar.gz')}/invoke"
    invocation_url = url + "/endpoints/bench/invocations"
    json_headers = {"Content-Type": "application/json", "Accept": "application/json"}
    direct: list[float] = []
    raw_endpoint: list[float] = []
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    for _ in range(requests):
        if time.monotonic() > deadline:
            break
        for target, samples, extra in (
            (container_url, direct, {}),
            (invocation_url, raw_endpoint, {"X-Amzn-SageMaker-Target-Model": "0.tar.gz"}),
        ):
            began = time.perf_counter()
            answer = http.request("POST", target, body=BODY, headers={**json_headers, **extra})
            if answer.status != 200:
                raise RuntimeError(f"{target} answered {answer.status}: {answer.data[:200]!r}")
            samples.append((time.perf_counter() - began) * 1000.0)
    return direct, raw_endpoint


def concurrent_pass(url: str, customers: list[int], clients: int) -> tuple[float, list[float], int]:
    """Invoke every customer in `customers` with `clients` threads; returns (seconds, latencies, errors)."""
    queue = list(reversed(customers))
    lock = threading.Lock()
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + PHASE_TIMEOUT_S

    def worker() -> None:
        nonlocal errors
        client = runtime_client(url, 2)
        while time.monotonic() < deadline:
            with lock:
                if not queue:
                    return
                customer = queue.pop()
            try:
                elapsed, _ = invoke(client, customer)
            except Exception as exc:  # a failed request is counted, the run goes on
                with lock:
                    errors += 1
                print(f"  request for {customer} failed: {exc}", file=sys.stderr)
                continue
            with lock:
                latencies.append(elapsed)

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in [pool.submit(worker) for _ in range(clients)]:
            future.result()
    return time.perf_counter() - began, latencies, errors


# ---- scale mode: the lean server at fleet size -----------------------------------------------------

SCALE_LOAD_CLIENTS = 4  # keep both workers busy while one client thread waits on its answer
SCALE_WARM_MODELS = 1000
SCALE_WARM_REQUESTS = 5000
BASELINE_ROUNDS = 4  # alternating rounds, so a burst of load elsewhere hits both sides alike
SCALE_CHUNK = 10_000  # load rate is reported per chunk: the first and the last must stay within 2x


class KeepAlive:
    """One kept-alive HTTP/1.1 connection (http.client: the least client overhead in the measurement)."""

    def __init__(self, port: int) -> None:
        import http.client

        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        self.connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = self.connection.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.connection.close()


def store_bytes(pids: list[int]) -> int:
    """/dev/shm taken by the lean servers' registries (allocated blocks, as tmpfs counts them)."""
    total = 0
    for pid in pids:
        for store in Path("/dev/shm").glob(f"fleetcast-lean-{pid}-*"):
            for item in store.rglob("*"):
                if item.is_file():
                    total += item.stat().st_blocks * 512
    return total


def load_range(port: int, names: list[str], urls: list[str], clients: int) -> tuple[float, int]:
    """POST /models for every name from `clients` keep-alive connections; (seconds, non-200 count)."""
    cursor = iter(range(len(names)))
    lock = threading.Lock()
    failures = 0

    def worker() -> None:
        nonlocal failures
        client = KeepAlive(port)
        try:
            while True:
                with lock:
                    index = next(cursor, None)
                if index is None:
                    return
                body = json.dumps({"model_name": names[index], "url": urls[index]}).encode()
                status, answer = client.post("/models", body)
                if status != 200:
                    with lock:
                        failures += 1
                        if failures <= 5:
                            print(f"  load {names[index]}: {status} {answer[:200]!r}", file=sys.stderr)
        finally:
            client.close()

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in [pool.submit(worker) for _ in range(clients)]:
            future.result()
    return time.perf_counter() - began, failures


def warm_latencies(port: int, names: list[str], requests: int) -> list[float]:
    """Round-robin over `names` on one keep-alive connection, after one untimed pass (the warm-up)."""
    client = KeepAlive(port)
    try:
        for name in names:
            status, answer = client.post(f"/models/{name}/invoke", BODY)
            if status != 200:
                raise RuntimeError(f"warm-up invoke of {name}: {status} {answer[:200]!r}")
        latencies = []
        for index in range(requests):
            name = names[index % len(names)]
            began = time.perf_counter()
            status, answer = client.post(f"/models/{name}/invoke", BODY)
            latencies.append((time.perf_counter() - began) * 1000.0)
            if status != 200 or len(json.loads(answer)["forecast"]) != 7:
                raise RuntimeError(f"invoke of {name}: {status} {answer[:200]!r}")
        return latencies
    finally:
        client.close()


def compiled_json_baseline(
    work: Path, pool_dirs: list[str], env: dict[str, str], loads: int
) -> tuple[float, float]:
    """Load rates (with compiled.json, without it) of one fresh server, in alternating rounds.

    The baseline is the same pool as archives written before compiled.json existed: model.json is
    parsed and compiled at every load.
    """
    legacy_dirs = []
    for index, source in enumerate(pool_dirs):
        target = work / "models" / f"legacy-{index}" / "model"
        shutil.copytree(source, target)
        (target / archive.COMPILED_FILE).unlink()
        metadata = json.loads((target / archive.METADATA_FILE).read_text())
        metadata.pop(archive.COMPILED_SHA256_KEY)
        (target / archive.METADATA_FILE).write_text(json.dumps(metadata))
        legacy_dirs.append(str(target))
    seconds = {"shipped": 0.0, "legacy": 0.0}
    per_round = max(1, loads // BASELINE_ROUNDS)
    with start_lean(work / "baseline", env, workers=2) as server:
        time.sleep(1.0)
        for round_ in range(BASELINE_ROUNDS):
            for label, dirs in (("legacy", legacy_dirs), ("shipped", pool_dirs)):
                names = [f"{label}-{round_}-{index}" for index in range(per_round)]
                urls = [dirs[index % len(dirs)] for index in range(per_round)]
                took, failures = load_range(server.port, names, urls, SCALE_LOAD_CLIENTS)
                if failures:
                    raise RuntimeError(f"{failures} baseline loads failed")
                seconds[label] += took
    total = per_round * BASELINE_ROUNDS
    return total / seconds["shipped"], total / seconds["legacy"]


def scale_main(args: argparse.Namespace) -> int:
    sizes = sorted({int(text) for text in args.scale.split(",") if text.strip()})
    work = Path(tempfile.mkdtemp(prefix="fleetcast-bench-scale-"))
    try:
        print(f"building a pool of {args.pool} trained models ({args.rows} daily rows each) ...", flush=True)
        build_models(work / "archives", args.pool, args.rows)
        pool_dirs = []
        for customer in range(args.pool):
            model_dir = work / "models" / f"pool-{customer}" / "model"
            model_dir.parent.mkdir(parents=True)
            safe_extract(work / "archives" / f"{customer}.tar.gz", model_dir)
            pool_dirs.append(str(model_dir))
        env = {MEMORY_ENV: str(args.memory_mb), "FLEETCAST_LOG_LEVEL": "WARNING"}
        if args.baseline_loads:
            shipped_rate, legacy_rate = compiled_json_baseline(work, pool_dirs, env, args.baseline_loads)
            print(
                f"load rate baseline ({args.baseline_loads} loads each, one server, alternating rounds): "
                f"archives without compiled.json {legacy_rate:.0f} loads/s, with it {shipped_rate:.0f} "
                f"loads/s ({shipped_rate / legacy_rate:.2f}x)",
                flush=True,
            )
        with start_lean(work, env, workers=2) as server:
            time.sleep(1.0)  # let the fresh workers settle before the empty-server measurement
            pids = [process.pid for process in server.family()]
            rss_empty = tree_rss_mb(server.pid)
            shm_empty = store_bytes(pids)
            print(
                f"lean server up: 2 workers, budget {args.memory_mb} MB, RSS {rss_empty:.0f} MB empty",
                flush=True,
            )
            rows = []
            loaded = 0
            chunks: list[tuple[int, float]] = []  # (models, seconds) per load chunk
            rng = random.Random(7)
            for size in sizes:
                while loaded < size:
                    upto = min(size, (loaded // SCALE_CHUNK + 1) * SCALE_CHUNK)
                    names = [f"m{index:07d}" for index in range(loaded, upto)]
                    urls = [pool_dirs[index % args.pool] for index in range(loaded, upto)]
                    seconds, failures = load_range(server.port, names, urls, SCALE_LOAD_CLIENTS)
                    if failures:
                        print(f"{failures} loads failed; stopping at {loaded} models", file=sys.stderr)
                        return 1
                    chunks.append((upto - loaded, seconds))
                    print(f"  {upto} loaded ({(upto - loaded) / seconds:.0f} loads/s)", flush=True)
                    loaded = upto
                rss = tree_rss_mb(server.pid)
                shm = store_bytes(pids) - shm_empty
                sample = [
                    f"m{index:07d}" for index in rng.sample(range(loaded), min(SCALE_WARM_MODELS, loaded))
                ]
                warm = warm_latencies(server.port, sample, SCALE_WARM_REQUESTS)
                # first and last full-size chunks (a partial one only when there is nothing else)
                rates = [count / seconds for count, seconds in chunks if count == SCALE_CHUNK] or [
                    count / seconds for count, seconds in chunks
                ]
                rows.append(
                    {
                        "models": loaded,
                        "rss_growth_mb": rss - rss_empty,
                        "rss_per_model_kib": (rss - rss_empty) * 1024 / loaded,
                        "shm_mb": shm / 1024 / 1024,
                        "shm_per_model_kib": shm / 1024 / loaded,
                        "loads_per_s": loaded / sum(seconds for _, seconds in chunks),
                        "first_last_chunk": (rates[0], rates[-1]),
                        "p50_ms": percentile(warm, 50),
                        "p99_ms": percentile(warm, 99),
                    }
                )
        print(
            f"\nlean server at scale: 2 workers, budget {args.memory_mb} MB, pool of {args.pool} archives "
            f"({args.rows} daily rows), {os.cpu_count()} CPUs; empty server RSS {rss_empty:.0f} MB"
        )
        header = (
            f"  {'models':>8}  {'RSS growth':>11}  {'RSS/model':>10}  {'/dev/shm':>9}  {'shm/model':>10}  "
            f"{'loads/s':>8}  {'first/last chunk':>17}  {'p50':>7}  {'p99':>7}"
        )
        print(header)
        for row in rows:
            first, last = row["first_last_chunk"]
            rss_part = f"{row['rss_growth_mb']:>8.0f} MB  {row['rss_per_model_kib']:>6.2f} KiB"
            shm_part = f"{row['shm_mb']:>6.0f} MB  {row['shm_per_model_kib']:>6.2f} KiB"
            print(
                f"  {row['models']:>8}  {rss_part}  {shm_part}  {row['loads_per_s']:>8.0f}  "
                f"{first:>8.0f}/{last:<8.0f}  {row['p50_ms']:>4.2f} ms  {row['p99_ms']:>4.2f} ms"
            )
        print(
            f"  (warm: {SCALE_WARM_REQUESTS} requests round-robin over {SCALE_WARM_MODELS} random loaded "
            "models, one keep-alive connection, period 7 with intervals, after one untimed pass)"
        )
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---- store mode: the registry alone ------------------------------------------------------------------

STORE_BASELINE_MAX = 10_000


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s ({seconds * 1e6 / count:.0f} us each)"


def _directory_store_baseline(directory: Path, body: str, count: int) -> tuple[float, float]:
    """The previous registry's cost model: a file per model, and a scan of the directory for each
    load's 409 check (it scanned three times per load); returns (seconds to add, seconds to look up)."""
    directory.mkdir(parents=True)

    def listing() -> set[str]:
        with os.scandir(directory) as entries:
            return {item.name for item in entries}

    began = time.perf_counter()
    for index in range(count):
        name = f"m.m{index:07d}"
        if name in listing():
            raise RuntimeError("duplicate")
        temp = directory / f".tmp-{index}"
        temp.write_text(body)
        os.rename(temp, directory / name)
    added = time.perf_counter() - began
    began = time.perf_counter()
    for index in range(0, count, max(1, count // 1000)):
        if f"m.m{index:07d}" not in listing():
            raise RuntimeError("missing")
    looked_up = (time.perf_counter() - began) / len(range(0, count, max(1, count // 1000))) * count
    return added, looked_up


def store_main(args: argparse.Namespace) -> int:
    from fleetcast.serving.lean.registry import SharedRegistry
    from fleetcast.serving.predictors import load_model

    count = args.store
    work = Path(tempfile.mkdtemp(prefix="fleetcast-bench-store-", dir="/dev/shm"))
    try:
        build_models(work / "archives", 1, args.rows)
        safe_extract(work / "archives" / "0.tar.gz", work / "model")
        document = load_model(work / "model").document
        registry = SharedRegistry(work / "sqlite")
        names = [f"m{index:07d}" for index in range(count)]
        began = time.perf_counter()
        for name in names:
            registry.add(name, "/opt/ml/models/x/model", 10_000, document)
        added = time.perf_counter() - began
        sample = random.Random(7).sample(names, min(10_000, count))
        began = time.perf_counter()
        for name in sample:
            registry.read(name)
        read = time.perf_counter() - began
        seen = registry.generation
        began = time.perf_counter()
        for name in sample[:1000]:
            registry.remove(name)
        removed = time.perf_counter() - began
        began = time.perf_counter()
        for _ in range(1000):
            registry.removed_since(seen)
        synced = time.perf_counter() - began
        shm = sum(item.stat().st_blocks * 512 for item in (work / "sqlite").iterdir())
        registry.close()
        baseline_count = min(count, STORE_BASELINE_MAX)
        body = json.dumps(document)
        base_added, base_lookup = _directory_store_baseline(work / "files", body, baseline_count)
        base_shm = sum(item.stat().st_blocks * 512 for item in (work / "files").iterdir())
        print(f"\nregistry store, in-process on /dev/shm, {os.cpu_count()} CPUs")
        print(f"  sqlite, {count:,} models")
        print(f"    add (409 check + insert + commit)        {_rate(count, added)}")
        print(f"    read one entry                           {_rate(len(sample), read)}")
        print(f"    remove                                   {_rate(1000, removed)}")
        print(f"    worker sync (1,000 unloads pending)      {_rate(1000, synced)}")
        print(
            f"    /dev/shm                                 {shm / 1024 / 1024:.0f} MB, "
            f"{shm / count:.0f} B/model"
        )
        print(f"  file per model + directory scan, {baseline_count:,} models")
        print(f"    add (one scan + write + rename)          {_rate(baseline_count, base_added)}")
        print(f"    look one up (one scan)                   {_rate(baseline_count, base_lookup)}")
        print(
            f"    /dev/shm                                 {base_shm / 1024 / 1024:.0f} MB, "
            f"{base_shm / baseline_count:.0f} B/model"
        )
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--rows", type=int, default=365, help="daily history rows per model")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--cold", type=int, default=5, help="never-loaded models invoked one at a time")
    parser.add_argument("--warm-requests", type=int, default=200)
    parser.add_argument("--throughput-requests", type=int, default=800)
    parser.add_argument("--max-loaded", type=int, default=None, help="pass --max-loaded to the endpoint")
    parser.add_argument("--force", action="store_true", help="run even if memory looks too small")
    parser.add_argument("--scale", default=None, help="lean scale mode: sizes, e.g. 1000,10000,100000")
    parser.add_argument("--pool", type=int, default=20, help="scale mode: distinct trained archives")
    parser.add_argument("--memory-mb", type=int, default=4096, help="scale mode: FLEETCAST_MEMORY_MB")
    parser.add_argument(
        "--baseline-loads",
        type=int,
        default=4000,
        help="scale mode: loads per side of the compiled.json baseline (0: skip it)",
    )
    parser.add_argument("--store", type=int, default=None, help="store mode: time the registry alone")
    args = parser.parse_args(argv)
    if args.store:
        return store_main(args)
    if args.scale:
        return scale_main(args)

    resident = min(args.models, args.max_loaded or args.models)
    available_mb = psutil.virtual_memory().available / 1024 / 1024
    needed_mb = resident * ASSUMED_MB_PER_MODEL + HEADROOM_MB
    if available_mb < needed_mb and not args.force:
        print(
            f"{resident} loaded models need about {needed_mb:.0f} MB under MMS (one worker process each); "
            f"only {available_mb:.0f} MB is available. Use --max-loaded or fewer --models (or --force).",
            file=sys.stderr,
        )
        return 2
    if shutil.which("java") is None:
        print("Multi Model Server needs Java: apt-get install -y openjdk-17-jre-headless", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="fleetcast-bench-serving-"))
    servers: list[Server] = []
    try:
        print(f"building {args.models} models ({args.rows} daily rows each) ...", flush=True)
        began = time.perf_counter()
        build_models(work / "models", args.models, args.rows)
        print(f"  {time.perf_counter() - began:.1f} s")

        # the MMS baseline; the default server is the lean one
        quiet = {"SAGEMAKER_MULTI_MODEL": "true", "FLEETCAST_LOG_LEVEL": "WARNING"}
        serve = start_mms(work, quiet)
        servers.append(serve)
        mms_port = serve.port
        rss_empty = tree_rss_mb(serve.pid)

        endpoint_args = ["--disk-cache", str(work / "cache")]
        if args.max_loaded:
            endpoint_args += ["--max-loaded", str(args.max_loaded)]
        endpoint = start_local_endpoint(
            work, models=work / "models", container=serve.url, args=endpoint_args, env=quiet
        )
        servers.append(endpoint)
        url = endpoint.url
        client = runtime_client(url, 4)

        print(f"cold invokes: {args.cold} never-loaded models, one at a time ...", flush=True)
        cold, cold_load, cold_download = [], [], []
        for customer in range(args.cold):
            elapsed, headers = invoke(client, customer)
            cold.append(elapsed)
            cold_load.append(float(headers["x-fleetcast-load-ms"]))
            cold_download.append(float(headers["x-fleetcast-download-ms"]))

        print(f"warm invokes: {args.warm_requests} requests to one loaded model ...", flush=True)
        warm, warm_container = [], []
        deadline = time.monotonic() + PHASE_TIMEOUT_S
        for _ in range(args.warm_requests):
            if time.monotonic() > deadline:
                break
            elapsed, headers = invoke(client, 0)
            warm.append(elapsed)
            warm_container.append(float(headers["x-fleetcast-invoke-ms"]))

        direct, raw_endpoint = direct_versus_endpoint(mms_port, url, min(args.warm_requests, 200))

        print(f"loading pass: {args.clients} clients, each of {args.models} models once ...", flush=True)
        load_seconds, load_latencies, load_errors = concurrent_pass(
            url, list(range(args.models)), args.clients
        )

        rss_loaded = tree_rss_mb(serve.pid)
        stats = json.loads(urllib3.request("GET", url + "/fleetcast/stats").data)
        loaded = int(stats["loaded_count"])

        print(f"throughput pass: {args.clients} clients, {args.throughput_requests} requests ...", flush=True)
        customers = [i % args.models for i in range(args.throughput_requests)]
        random.Random(7).shuffle(customers)
        tp_seconds, tp_latencies, tp_errors = concurrent_pass(url, customers, args.clients)
        stats = json.loads(urllib3.request("GET", url + "/fleetcast/stats").data)

        rows = [
            (f"cold invoke (client, median of {len(cold)})", f"{statistics.median(cold):.0f} ms"),
            ("  of which download+extract", f"{statistics.median(cold_download):.1f} ms"),
            ("  of which POST /models (load)", f"{statistics.median(cold_load):.0f} ms"),
            ("warm invoke p50 (client)", f"{percentile(warm, 50):.1f} ms"),
            ("warm invoke p99 (client)", f"{percentile(warm, 99):.1f} ms"),
            ("warm invoke p50 (container only)", f"{percentile(warm_container, 50):.1f} ms"),
            (
                "warm p50: container direct / endpoint, no boto3",
                f"{percentile(direct, 50):.1f} / {percentile(raw_endpoint, 50):.1f} ms",
            ),
            (
                "  endpoint front overhead (p50 difference)",
                f"{percentile(raw_endpoint, 50) - percentile(direct, 50):.1f} ms",
            ),
            (
                f"loading pass: {args.models} models, {args.clients} clients",
                f"{len(load_latencies) / load_seconds:.2f} req/s "
                f"({load_seconds:.1f} s, {load_errors} errors)",
            ),
            (
                f"warm throughput, {args.clients} clients over {args.models} models"
                + (f" (churn: --max-loaded {args.max_loaded})" if args.max_loaded else ""),
                f"{len(tp_latencies) / tp_seconds:.1f} req/s ({tp_errors} errors)",
            ),
            (
                "  latency p50 / p99",
                f"{percentile(tp_latencies, 50):.0f} / {percentile(tp_latencies, 99):.0f} ms",
            ),
            ("loaded models", str(loaded)),
            ("MMS tree RSS, no model / loaded", f"{rss_empty:.0f} MB / {rss_loaded:.0f} MB"),
            ("RSS per loaded model (tree RSS / loaded)", f"{rss_loaded / max(loaded, 1):.0f} MB"),
            ("RSS per loaded model (increment)", f"{(rss_loaded - rss_empty) / max(loaded, 1):.0f} MB"),
            ("endpoint counters", json.dumps(stats["stats"], sort_keys=True)),
        ]
        width = max(len(label) for label, _ in rows)
        print(f"\nserving baseline: MMS (multi-model) behind fleetcast local-endpoint, {os.cpu_count()} CPUs")
        for label, value in rows:
            print(f"  {label:<{width}}  {value}")
        return 0
    finally:
        for server in reversed(servers):
            server.stop(grace=40)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
