"""MMS against the lean server, side by side in one run, on the same 1,000 trained models.

    python -m bench.serving_compare [--models 1000] [--mms-models 30] [--lean-seconds 60] [--mms-seconds 20]
                                    [--model-cache DIR] [--skip-mms] [--lean-workers N] [--lean-threads N]

Both servers are the real `fleetcast serve` (FLEETCAST_SERVER=mms|lean), each measured directly against
the container API and through `fleetcast local-endpoint` (the SageMaker platform stand-in):

- warm invoke p50/p99: `{"period": 7, "intervals": true}`, one keep-alive client, loaded models;
- cold invoke: a never-loaded model, `POST /models` + first invoke (direct), and download + extract +
  load + predict (through the endpoint);
- models per GB of server RSS: lean loads all models, MMS as many as `--mms-models` (each is a ~140 MB
  process), per-model RSS extrapolated;
- requests/s with 8 concurrent keep-alive clients over every loaded model, bounded in time, errors counted;
- RSS after DELETE of every model, against the empty server's.

The clients are threads on http.client keep-alive connections (~60 us of client CPU per request, far
below the server's cost); the table reports the client's CPU share so it can be checked. Models are
trained once with `fleetcast local-train` and cached in `--model-cache`. Only 127.0.0.1; every loop is
bounded in count and time.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from fleetcast.serving.environment import BIND_HOST_ENV, SETTING_NAMES, THREADS_ENV, WORKERS_ENV
from tests.support.servers import Server, start_local_endpoint, start_server

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120
BODY = json.dumps({"period": 7, "intervals": True}).encode()
JSON_HEADERS = {"Content-Type": "application/json"}
GIB = 1024**3
MB = 1024**2

TARGETS = {
    "warm_p50_ms": 2.0,
    "warm_p99_ms": 10.0,
    "cold_ms": 100.0,
    "models_per_gb": 1000.0,
    "rps": 1000.0,
    "delete_rss_ratio": 1.10,
}


# ---- models ----------------------------------------------------------------------------------------


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "fleetcast.cli", *args]


def child_env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "container"), os.environ.get("PYTHONPATH")])),
        "FLEETCAST_LOG_LEVEL": "WARNING",
    }
    for name in SETTING_NAMES:  # a developer's shell must not change what is measured
        env.pop(name, None)
    env[BIND_HOST_ENV] = "127.0.0.1"
    env.update(extra)
    return env


# The run local-train writes the cached models as: its archives are <cache>/models/<run>/<customer>.tar.gz.
MODELS_RUN = "bench"


def run_folder(cache: Path) -> Path:
    return cache / "models" / MODELS_RUN


def trained_models(cache: Path, count: int) -> list[Path]:
    """`count` model archives, trained once by `fleetcast local-train` on generated data, then cached."""
    archives = sorted(run_folder(cache).glob("*.tar.gz"))
    if len(archives) >= count:
        return archives[:count]
    print(f"training {count} models into {cache} (once; cached for later runs) ...", flush=True)
    began = time.perf_counter()
    shutil.rmtree(cache, ignore_errors=True)
    (cache / "data").mkdir(parents=True)
    subprocess.run(
        cli(
            "generate",
            "--customers",
            str(count),
            "--seed",
            "11",
            "--out",
            str(cache / "data" / "part-00000.csv"),
        ),
        env=child_env(),
        check=True,
    )
    subprocess.run(
        cli(
            "local-train",
            "--data",
            str(cache / "data"),
            "--hosts",
            "1",
            "--models",
            str(cache / "models"),
            "--work-dir",
            str(cache / "work"),
            "--run-id",
            MODELS_RUN,
        ),
        env=child_env(),
        check=True,
        timeout=3600,
    )
    shutil.rmtree(cache / "work", ignore_errors=True)
    print(f"  trained in {time.perf_counter() - began:.0f} s", flush=True)
    archives = sorted(run_folder(cache).glob("*.tar.gz"))
    if len(archives) < count:
        raise SystemExit(f"training produced {len(archives)} models, wanted {count}")
    return archives[:count]


def extract_all(archives: list[Path], models_dir: Path) -> list[tuple[str, Path]]:
    """SageMaker's layout: <models>/<name>/model; names are opaque, like the platform's."""
    extracted = []
    for archive in archives:
        name = "m-" + archive.name.removesuffix(".tar.gz")
        target = models_dir / name / "model"
        target.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        extracted.append((name, target))
    return extracted


# ---- servers -----------------------------------------------------------------------------------------


def tree_rss(server: Server) -> int:
    """Resident memory of the server's whole process tree, in bytes."""
    total = 0
    for member in server.family():
        with contextlib.suppress(psutil.Error):
            total += member.memory_info().rss
    return total


def stop_timed(server: Server) -> float:
    """SIGTERM (SIGKILL after 40 s); returns seconds to exit."""
    began = time.monotonic()
    server.stop(grace=40)
    return time.monotonic() - began


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 120,
) -> tuple[int, bytes, dict[str, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def load(port: int, name: str, url: Path) -> int:
    status, body, _ = request(
        port, "POST", "/models", json.dumps({"model_name": name, "url": str(url)}).encode(), JSON_HEADERS
    )
    if status != 200:
        print(f"  load {name}: {status} {body[:300]!r}", file=sys.stderr)
    return status


# ---- clients -----------------------------------------------------------------------------------------


class Client:
    """One keep-alive connection; `invoke` returns (ms, status)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def post(self, path: str, headers: dict[str, str]) -> tuple[float, int, bytes, http.client.HTTPResponse]:
        began = time.perf_counter()
        try:
            self.connection.request("POST", path, body=BODY, headers=headers)
            response = self.connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            raise
        return (time.perf_counter() - began) * 1000, response.status, payload, response

    def invoke(self, name: str) -> tuple[float, int]:
        ms, status, payload, _ = self.post(f"/models/{name}/invoke", JSON_HEADERS)
        if status == 200 and payload.count(b'"ds"') != 7:
            raise RuntimeError(f"unexpected answer from {name}: {payload[:200]!r}")
        return ms, status


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def warm_latencies(port: int, names: list[str], requests_: int, seconds: float) -> list[float]:
    client = Client(port)
    for name in names[:20]:
        client.invoke(name)  # every worker-facing path warm: first touch of each model
    rng = random.Random(3)
    latencies = []
    deadline = time.monotonic() + seconds
    for _ in range(requests_):
        if time.monotonic() > deadline:
            break
        ms, status = client.invoke(rng.choice(names))
        if status != 200:
            raise RuntimeError(f"warm invoke failed with {status}")
        latencies.append(ms)
    return latencies


@dataclass
class Throughput:
    seconds: float
    requests: int
    errors: int
    latencies: list[float] = field(default_factory=list)
    client_cpu_share: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def throughput(port: int, names: list[str], clients: int, seconds: float, max_requests: int) -> Throughput:
    """`clients` threads, each with its own keep-alive connection, over random models, for `seconds`."""
    lock = threading.Lock()
    result = Throughput(seconds=0.0, requests=0, errors=0)
    stop = threading.Event()
    budget = [max_requests]

    def work(seed: int) -> None:
        rng = random.Random(seed)
        client = Client(port)
        local: list[float] = []
        errors = 0
        while not stop.is_set():
            with lock:
                if budget[0] <= 0:
                    break
                budget[0] -= 1
            try:
                ms, status = client.invoke(rng.choice(names))
                if status == 200:
                    local.append(ms)
                else:
                    errors += 1
            except Exception:
                errors += 1
        with lock:
            result.latencies.extend(local)
            result.requests += len(local)
            result.errors += errors

    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    threads = [threading.Thread(target=work, args=(seed,), daemon=True) for seed in range(clients)]
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=130)
    result.seconds = time.perf_counter() - began
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage_after.ru_utime - usage_before.ru_utime) + (usage_after.ru_stime - usage_before.ru_stime)
    result.client_cpu_share = cpu / result.seconds / (os.cpu_count() or 1)
    return result


# ---- one server, all measurements ------------------------------------------------------------------


@dataclass
class Measured:
    kind: str
    warm: list[float] = field(default_factory=list)
    cold_direct: list[float] = field(default_factory=list)
    cold_endpoint: list[float] = field(default_factory=list)
    cold_endpoint_parts: dict[str, list[float]] = field(default_factory=dict)
    endpoint_warm: list[float] = field(default_factory=list)
    rss_empty: int = 0
    rss_loaded: int = 0
    rss_served: int = 0
    rss_deleted: int = 0
    loaded: int = 0
    load_failures: int = 0
    tput: Throughput | None = None
    delete_failures: int = 0
    sigterm_seconds: float = 0.0
    load_seconds: float = 0.0

    @property
    def per_model_bytes(self) -> float:
        grown = max(self.rss_loaded, self.rss_served) - self.rss_empty
        return max(grown, 1) / max(self.loaded, 1)

    @property
    def models_per_gb(self) -> float:
        return GIB / self.per_model_bytes


def count_listed(port: int, limit: int) -> int:
    """Walk GET /models page by page (bounded) and count the models."""
    count, token = 0, None
    for _ in range(limit // 100 + 3):
        path = "/models?limit=100" + (f"&next_page_token={token}" if token else "")
        _, body, _ = request(port, "GET", path)
        page = json.loads(body)
        count += len(page["models"])
        token = page.get("nextPageToken")
        if not token:
            break
    return count


def cold_phase(port: int, models: list[tuple[str, Path]], result: Measured) -> None:
    """Never-loaded models, one at a time: POST /models then the first invoke, timed together."""
    for name, url in models:
        began = time.perf_counter()
        if load(port, name, url) != 200:
            result.load_failures += 1
            continue
        _, status = Client(port).invoke(name)
        result.cold_direct.append((time.perf_counter() - began) * 1000)
        if status != 200:
            result.load_failures += 1


def load_phase(port: int, models: list[tuple[str, Path]], result: Measured, timeout: float) -> None:
    began = time.perf_counter()
    deadline = time.monotonic() + timeout
    for name, url in models:
        if time.monotonic() > deadline:
            print(f"[{result.kind}] load phase stopped at its {timeout:.0f} s bound", flush=True)
            break
        if load(port, name, url) != 200:
            result.load_failures += 1
    result.load_seconds = time.perf_counter() - began


def delete_phase(port: int, result: Measured, limit: int) -> None:
    """DELETE every listed model (page by page, bounded)."""
    for _ in range(limit // 100 + 5):
        _, body, _ = request(port, "GET", "/models?limit=100")
        listed = json.loads(body)["models"]
        if not listed:
            return
        for model in listed:
            status, _, _ = request(port, "DELETE", f"/models/{model['modelName']}")
            if status != 200:
                result.delete_failures += 1


def measure(
    kind: str,
    models: list[tuple[str, Path]],
    held_back: list[tuple[str, Path]],
    work: Path,
    args: argparse.Namespace,
    env_extra: dict[str, str],
) -> Measured:
    """Every measurement on one server; `held_back` models stay never-loaded (the endpoint's cold starts)."""
    result = Measured(kind)
    resident = models[: args.mms_models] if kind == "mms" else models
    seconds = args.mms_seconds if kind == "mms" else args.lean_seconds
    cold_count = args.mms_cold if kind == "mms" else args.cold
    env = {"FLEETCAST_LOG_LEVEL": "WARNING", **env_extra}
    print(f"\n[{kind}] starting fleetcast serve {env_extra or ''}", flush=True)
    server = start_server(kind, work / kind, env, timeout=START_TIMEOUT_S)
    port = server.port
    print(f"[{kind}] listening on {server.url}", flush=True)
    endpoint: Server | None = None
    try:
        time.sleep(1.0)
        result.rss_empty = tree_rss(server)
        print(f"[{kind}] cold invokes (direct): {cold_count}", flush=True)
        cold_phase(port, resident[:cold_count], result)
        print(f"[{kind}] loading {len(resident) - cold_count} more models ...", flush=True)
        load_phase(port, resident[cold_count:], result, args.load_timeout)
        result.loaded = count_listed(port, len(resident))
        time.sleep(1.0)
        result.rss_loaded = tree_rss(server)
        names = [name for name, _ in resident][: result.loaded]

        print(f"[{kind}] warm invokes: up to {args.warm_requests} over {len(names)} models", flush=True)
        result.warm = warm_latencies(port, names, args.warm_requests, seconds=120)
        print(
            f"[{kind}] throughput: {args.clients} clients over {len(names)} models for {seconds:.0f} s",
            flush=True,
        )
        result.tput = throughput(port, names, args.clients, seconds, max_requests=10_000_000)
        result.rss_served = tree_rss(server)

        if args.endpoint and held_back:
            endpoint = measure_endpoint(result, server, held_back, work, env, args)
            endpoint.stop(grace=40)
            endpoint = None
        print(f"[{kind}] DELETE every model ...", flush=True)
        delete_phase(port, result, len(models) + len(held_back))
        time.sleep(2.0)
        result.rss_deleted = tree_rss(server)
    finally:
        if endpoint is not None:
            endpoint.stop(grace=40)
        result.sigterm_seconds = stop_timed(server)
    return result


def measure_endpoint(
    result: Measured,
    server: Server,
    spare: list[tuple[str, Path]],
    work: Path,
    env: dict[str, str],
    args: argparse.Namespace,
) -> Server:
    """Through `fleetcast local-endpoint`: cold (download+extract+load+predict) and warm invokes."""
    archives = work / "endpoint_models" / result.kind
    archives.mkdir(parents=True)
    chosen = spare[: args.endpoint_cold]
    for name, _ in chosen:
        shutil.copy(run_folder(Path(args.model_cache)) / f"{name.removeprefix('m-')}.tar.gz", archives)
    endpoint = start_local_endpoint(
        work / f"endpoint_{result.kind}",
        models=archives,
        container=server.url,
        args=["--disk-cache", str(work / f"endpoint_cache_{result.kind}")],
        env=env,
        timeout=START_TIMEOUT_S,
    )
    endpoint_port = endpoint.port
    print(f"[{result.kind}] through the local endpoint: {len(chosen)} cold, then warm", flush=True)
    client = Client(endpoint_port)
    parts: dict[str, list[float]] = {"download": [], "load": [], "invoke": []}
    for name, _ in chosen:
        target = {**JSON_HEADERS, "X-Amzn-SageMaker-Target-Model": f"{name.removeprefix('m-')}.tar.gz"}
        ms, status, payload, response = client.post("/endpoints/bench/invocations", target)
        if status != 200:
            print(f"  endpoint cold {name}: {status} {payload[:300]!r}", file=sys.stderr)
            continue
        result.cold_endpoint.append(ms)
        for part, values in parts.items():
            value = response.getheader(f"x-fleetcast-{part}-ms")
            if value is not None:
                values.append(float(value))
    result.cold_endpoint_parts = parts
    if chosen:
        target = {
            **JSON_HEADERS,
            "X-Amzn-SageMaker-Target-Model": f"{chosen[0][0].removeprefix('m-')}.tar.gz",
        }
        deadline = time.monotonic() + 60
        for _ in range(args.endpoint_warm):
            if time.monotonic() > deadline:
                break
            ms, status, _, _ = client.post("/endpoints/bench/invocations", target)
            if status == 200:
                result.endpoint_warm.append(ms)
    return endpoint


# ---- report ------------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def pct(values: list[float], q: float) -> float:
    return percentile(values, q) if values else math.nan


@dataclass
class Metric:
    label: str
    target: str
    lean: float
    mms: float | None  # None: MMS not run
    unit: str = ""
    digits: int = 1
    higher_is_better: bool = False
    passed: bool | None = None  # None: no target
    compare: bool = True  # False: a ratio would mean nothing (e.g. the client's own CPU)

    def cells(self) -> list[str]:
        def show(value: float | None) -> str:
            if value is None:
                return "-"
            return "n/a" if math.isnan(value) else f"{value:,.{self.digits}f} {self.unit}".strip()

        ratio = ""
        if (
            self.compare
            and self.mms is not None
            and not math.isnan(self.mms)
            and not math.isnan(self.lean)
            and self.mms
            and self.lean
        ):
            factor = self.lean / self.mms if self.higher_is_better else self.mms / self.lean
            ratio = f"{factor:,.1f}x better" if factor >= 1 else f"{1 / factor:,.1f}x worse"
        verdict = "" if self.passed is None else ("PASS" if self.passed else "FAIL")
        return [self.label, self.target, show(self.mms), show(self.lean), ratio, verdict]


def metrics(mms: Measured | None, lean: Measured, args: argparse.Namespace) -> list[Metric]:
    def both(read: Callable[[Measured], float]) -> tuple[float, float | None]:
        return read(lean), (read(mms) if mms else None)

    def tput(read: Callable[[Throughput], float]) -> Callable[[Measured], float]:
        return lambda m: read(m.tput) if m.tput else math.nan

    def row(
        label: str,
        target: str,
        read: Callable[[Measured], float],
        check: Callable[[float], bool] | None = None,
        **kw: Any,
    ) -> Metric:
        lean_value, mms_value = both(read)
        return Metric(
            label, target, lean_value, mms_value, passed=None if check is None else check(lean_value), **kw
        )

    expected = args.models - (args.endpoint_cold if args.endpoint else 0)
    seconds = (
        f"{lean.tput.seconds:.0f} s lean" + (f", {mms.tput.seconds:.0f} s MMS" if mms and mms.tput else "")
        if lean.tput
        else ""
    )
    rows = [
        row(
            "warm invoke p50",
            "<= 2 ms",
            lambda m: pct(m.warm, 50),
            lambda v: v <= TARGETS["warm_p50_ms"],
            unit="ms",
            digits=2,
        ),
        row(
            "warm invoke p99",
            "<= 10 ms",
            lambda m: pct(m.warm, 99),
            lambda v: v <= TARGETS["warm_p99_ms"],
            unit="ms",
            digits=2,
        ),
        row(
            "cold invoke direct (POST /models + predict), median",
            "<= 100 ms",
            lambda m: median(m.cold_direct),
            lambda v: v <= TARGETS["cold_ms"],
            unit="ms",
        ),
        row("cold invoke direct, worst", "", lambda m: max(m.cold_direct, default=math.nan), unit="ms"),
    ]
    if args.endpoint:
        rows += [
            row(
                "cold via endpoint (download+extract+load+predict), median",
                "<= 100 ms",
                lambda m: median(m.cold_endpoint),
                lambda v: v <= TARGETS["cold_ms"],
                unit="ms",
            ),
            row(
                "  endpoint's download+extract",
                "",
                lambda m: median(m.cold_endpoint_parts.get("download", [])),
                unit="ms",
            ),
            row(
                "  endpoint's POST /models",
                "",
                lambda m: median(m.cold_endpoint_parts.get("load", [])),
                unit="ms",
            ),
            row("warm via endpoint p50", "", lambda m: pct(m.endpoint_warm, 50), unit="ms", digits=2),
        ]
    rows += [
        row(
            "models loaded",
            "",
            lambda m: m.loaded,
            lambda v: v == expected and not lean.load_failures,
            digits=0,
            higher_is_better=True,
        ),
        row("server RSS empty", "", lambda m: m.rss_empty / MB, unit="MB", digits=0),
        row(
            "server RSS loaded, after serving every model",
            "",
            lambda m: max(m.rss_loaded, m.rss_served) / MB,
            unit="MB",
            digits=0,
        ),
        row("RSS per loaded model", "", lambda m: m.per_model_bytes / 1024, unit="KiB", digits=0),
        row(
            "models per GB of server RSS",
            ">= 1,000",
            lambda m: m.models_per_gb,
            lambda v: v >= TARGETS["models_per_gb"],
            digits=0,
            higher_is_better=True,
        ),
        row(
            f"requests/s, {args.clients} clients ({seconds})",
            ">= 1,000",
            tput(lambda t: t.rps),
            lambda v: v >= TARGETS["rps"],
            unit="req/s",
            digits=0,
            higher_is_better=True,
        ),
        row("  errors during that run", "0", tput(lambda t: t.errors), lambda v: v == 0, digits=0),
        row(
            "  latency p50 / p99 under load: p50",
            "",
            tput(lambda t: pct(t.latencies, 50)),
            unit="ms",
            digits=2,
        ),
        row(
            "  latency p50 / p99 under load: p99",
            "",
            tput(lambda t: pct(t.latencies, 99)),
            unit="ms",
            digits=2,
        ),
        row(
            "  client CPU, share of all cores",
            "",
            tput(lambda t: 100 * t.client_cpu_share),
            unit="%",
            digits=0,
            compare=False,
        ),
        row(
            "RSS after DELETE of every model / empty",
            "<= 1.10",
            lambda m: m.rss_deleted / m.rss_empty,
            lambda v: v <= TARGETS["delete_rss_ratio"] and not lean.delete_failures,
            unit="x",
            digits=3,
        ),
        row("SIGTERM to exit", "<= 30 s", lambda m: m.sigterm_seconds, lambda v: v <= 30, unit="s"),
    ]
    return rows


def report(mms: Measured | None, lean: Measured, args: argparse.Namespace) -> None:
    rows = [metric.cells() for metric in metrics(mms, lean, args)]
    headers = ["metric", "target", "MMS", "lean", "lean vs MMS", "lean"]
    widths = [max(len(line[i]) for line in [headers, *rows]) for i in range(len(headers))]
    load_after = f"{os.getloadavg()[0]:.2f}"
    print(f"\n{os.cpu_count()} CPUs, load average {args.load_before} before, {load_after} after")
    if mms:
        print(f"MMS: {mms.loaded} models loaded (--mms-models {args.mms_models}); throughput over those")
    workers, threads = args.lean_workers or "default", args.lean_threads or "default"
    print(f"lean: {lean.loaded} models loaded, {workers} workers x {threads} threads")
    for line in [headers, ["-" * width for width in widths], *rows]:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument(
        "--model-cache", default=str(Path(tempfile.gettempdir()) / "fleetcast-serving-compare-models")
    )
    parser.add_argument("--mms-models", type=int, default=30, help="models MMS loads (~140 MB each)")
    parser.add_argument("--cold", type=int, default=20, help="never-loaded models timed on the lean server")
    parser.add_argument("--mms-cold", type=int, default=5)
    parser.add_argument("--warm-requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--lean-seconds", type=float, default=60.0)
    parser.add_argument("--mms-seconds", type=float, default=20.0)
    parser.add_argument("--load-timeout", type=float, default=600.0)
    parser.add_argument("--endpoint", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--endpoint-cold", type=int, default=10)
    parser.add_argument("--endpoint-warm", type=int, default=500)
    parser.add_argument("--skip-mms", action="store_true")
    parser.add_argument(
        "--lean-workers", default="", help="SAGEMAKER_MODEL_SERVER_WORKERS for lean (default: cores)"
    )
    parser.add_argument("--lean-threads", default="", help="FLEETCAST_LEAN_THREADS for lean")
    args = parser.parse_args(argv)
    args.load_before = f"{os.getloadavg()[0]:.2f}"
    if not args.skip_mms and shutil.which("java") is None:
        print(
            "MMS needs Java (apt-get install -y openjdk-17-jre-headless), or pass --skip-mms", file=sys.stderr
        )
        return 2

    archives = trained_models(Path(args.model_cache), args.models)
    work = Path(tempfile.mkdtemp(prefix="fleetcast-serving-compare-"))
    try:
        models = extract_all(archives, work / "models")
        lean_env = {}
        if args.lean_workers:
            lean_env[WORKERS_ENV] = args.lean_workers
        if args.lean_threads:
            lean_env[THREADS_ENV] = args.lean_threads
        # Hold back some models for the endpoint's cold starts: never loaded directly.
        spare = args.endpoint_cold if args.endpoint else 0
        direct, held_back = models[: len(models) - spare], models[len(models) - spare :]
        lean = measure("lean", direct, held_back, work, args, lean_env)
        mms = None if args.skip_mms else measure("mms", direct, held_back, work, args, {})
        report(mms, lean, args)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
