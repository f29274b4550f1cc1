"""Serving baseline: the real MMS container behind the local multi-model endpoint, called with boto3.

    python -m bench.serving [--models 100] [--clients 8] [--warm-requests 200] [--throughput-requests 800]

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
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import urllib3

from fleetcast.data.generate import customer_series
from fleetcast.local.model_cache import model_id
from fleetcast.logs import quiet_third_party
from fleetcast.model.archive import write_archive
from fleetcast.model.prophet_model import fit_prophet, model_to_json
from fleetcast.model.settings import ProphetSettings
from tests.support.servers import Server, start_local_endpoint, start_mms

PHASE_TIMEOUT_S = 900
# ENVIRONMENT.md measured ~140 MB per loaded model under MMS; keep headroom for the rest of the machine.
ASSUMED_MB_PER_MODEL = 180
HEADROOM_MB = 3000


def build_models(directory: Path, count: int, rows: int) -> None:
    quiet_third_party()
    grid = pd.date_range("2022-01-01", periods=365, freq="D")
    settings = ProphetSettings()  # the training defaults: 1,000 uncertainty samples, as served in practice
    for customer in range(count):
        stamps, values = customer_series(customer, 42, grid, rows)
        model = fit_prophet(pd.DataFrame({"ds": stamps, "y": values}), settings)
        metadata = {
            "customer": str(customer),
            "rows": rows,
            "start": stamps[0].isoformat(),
            "end": stamps[-1].isoformat(),
            "freq": "D",
            "data_sha256": "bench",
            "config_fingerprint": "bench",
            "prophet": asdict(settings),
            "metrics": None,
            "fit_seconds": 0.0,
            "versions": {},
            "trained_at": "bench",
            "host": "bench",
        }
        write_archive(directory, str(customer), model_to_json(model), metadata)


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
    args = parser.parse_args(argv)

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
