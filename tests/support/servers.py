"""The one way tests and benches start a server: lean, MMS, the local endpoint, or the Docker image.

Every server is started the way a user starts it (the `fleetcast` CLI, or `docker run IMAGE serve`), on
a loopback port no other process can take between choosing and binding it:

- lean: this process binds 127.0.0.1:0 (the OS picks the port) and hands the listening socket to
  gunicorn as systemd socket activation (socket_activation.py); the server never binds by itself;
- local endpoint: `--port 0`; the port is read back from the process's own listening socket;
- image: `-p 127.0.0.1::8080`; Docker picks the host port and `docker port` reads it back;
- MMS: it must bind by itself and parses its port as a Java short, so it cannot use the OS's ephemeral
  range (32768 and up) at all. It gets a random free port below that range (where the OS never hands out
  port-0 binds), and it counts as started only once its own process tree holds the listening socket;
  when another process won the port first, MMS is stopped and started again on another port (bounded).

A started server answers /ping; `stop()` sends SIGTERM, then SIGKILLs the whole process tree after the
grace period. The server's combined stdout/stderr stays in a log file and goes into every failure message.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import psutil

from fleetcast.serving.environment import (
    BIND_HOST_ENV,
    MULTI_MODEL_ENV,
    PORT_ENV,
    SERVER_ENV,
    SETTING_NAMES,
    WORKERS_ENV,
)

REPO = Path(__file__).resolve().parents[2]
CONTAINER_DIR = REPO / "container"
ACTIVATION = Path(__file__).with_name("socket_activation.py")
LOOPBACK = "127.0.0.1"
JSON_HEADERS = {"Content-Type": "application/json"}
STARTUP_SECONDS = 90.0
GRACE_SECONDS = 30.0  # what SageMaker allows between SIGTERM and SIGKILL
LOG_TAIL_CHARS = 4000
MMS_PORTS = range(20000, 32767)  # below the kernel's ephemeral range; MMS refuses ports above 32767
MMS_ATTEMPTS = 5
PORT_IN_USE_MARKERS = ("Address already in use", "BindException")
# Knobs a developer's shell may carry that would change what a test means; each test sets what it needs.
CLEARED_ENV = (*SETTING_NAMES, "LISTEN_FDS", "LISTEN_PID")


class ServerStartError(RuntimeError):
    """A server that exited or never answered /ping; the message carries the end of its log."""


def fleetcast_command(*args: str) -> list[str]:
    """The `fleetcast` CLI of the interpreter running the tests."""
    return [sys.executable, "-m", "fleetcast.cli", *args]


def server_env(root: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a server under test: loopback only, /opt/ml relocated under `root`."""
    env = {key: value for key, value in os.environ.items() if key not in CLEARED_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CONTAINER_DIR), os.environ.get("PYTHONPATH")]))
    env["SAGEMAKER_BASE_DIR"] = str(root / "opt_ml")
    env[BIND_HOST_ENV] = LOOPBACK
    env.setdefault("FLEETCAST_LOG_LEVEL", "INFO")
    # The multi-model contract, as SageMaker sets it for a multi-model endpoint (unset: single-model).
    env[MULTI_MODEL_ENV] = "true"
    env.update(extra or {})
    return env


def http_status(url: str, path: str = "/ping", timeout: float = 2.0) -> int | None:
    """The status of GET url+path, or None when nothing answers."""
    host_port = url.removeprefix("http://").rstrip("/")
    host, _, port = host_port.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def listening_ports(processes: Sequence[psutil.Process]) -> set[int]:
    """TCP ports the given processes listen on."""
    ports: set[int] = set()
    for process in processes:
        with contextlib.suppress(psutil.Error):
            for conn in process.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr:
                    ports.add(conn.laddr.port)
    return ports


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port where connections are refused: bound by us, never listening, held until exit."""
    with socket.socket() as holder:
        holder.bind((LOOPBACK, 0))
        yield holder.getsockname()[1]


@dataclass
class Server:
    """A server process started here: its URL, its log, its process tree, and a complete stop."""

    kind: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    _known: dict[int, psutil.Process] = field(default_factory=dict, repr=False)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        return self.log()[-chars:]

    def family(self) -> list[psutil.Process]:
        """The server process and all its descendants now (remembered, so stop() finds orphans too)."""
        try:
            me = psutil.Process(self.process.pid)
            members = [me, *me.children(recursive=True)]
        except psutil.Error:
            members = []
        for member in members:
            self._known.setdefault(member.pid, member)
        return members

    def running(self) -> bool:
        return self.process.poll() is None

    # The two multi-model API calls nearly every serving test makes.
    def load(self, name: str, model_dir: Path, timeout: float = 60):
        import requests

        return requests.post(
            f"{self.url}/models", json={"model_name": name, "url": str(model_dir)}, timeout=timeout
        )

    def invoke(
        self, name: str, body: bytes | str, headers: Mapping[str, str] | None = None, timeout: float = 60
    ):
        import requests

        headers = JSON_HEADERS if headers is None else headers
        return requests.post(f"{self.url}/models/{name}/invoke", data=body, headers=headers, timeout=timeout)

    def wait_ready(self, timeout: float = STARTUP_SECONDS, path: str = "/ping", statuses=(200,)) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.family()
            if not self.running():
                raise ServerStartError(
                    f"{self.kind} exited with {self.process.returncode} during start-up; its log ends:\n"
                    f"{self.log_tail()}"
                )
            if http_status(self.url, path) in statuses:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(
                    f"{self.kind} did not answer {path} on {self.url} within {timeout:.0f} s; its log ends:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self, grace: float = GRACE_SECONDS) -> int | None:
        """SIGTERM the server, SIGKILL its whole tree after `grace`; returns its exit code."""
        members = self.family()
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(grace)
        self.kill_leftovers(members)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        return self.process.returncode

    def kill_leftovers(self, members: Sequence[psutil.Process] = ()) -> None:
        survivors = {member.pid: member for member in [*self._known.values(), *members]}
        for member in survivors.values():
            with contextlib.suppress(psutil.Error):
                if member.is_running():  # psutil compares the start time: never a recycled pid
                    member.kill()
        # Its session: anything it started that was re-parented away from it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        psutil.wait_procs(list(survivors.values()), timeout=5)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.running():
            self.stop()
        else:
            self.kill_leftovers()


def _spawn(kind: str, command: list[str], env: dict[str, str], log_path: Path, **popen) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command,
            env=env,
            cwd=log_path.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() can reach every descendant
            **popen,
        )


def start_lean(
    root: Path,
    env: Mapping[str, str] | None = None,
    *,
    workers: int | None = None,
    wait: bool = True,
    timeout: float = STARTUP_SECONDS,
    log_name: str = "serve-lean.log",
) -> Server:
    """`fleetcast serve` (the lean server, the default) on a port the OS picked.

    `workers` sets SAGEMAKER_MODEL_SERVER_WORKERS (default: one per core, which is 1 on some machines).
    """
    if workers is not None:
        env = {WORKERS_ENV: str(workers), **(env or {})}
    with socket.socket() as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(128)
        port = listener.getsockname()[1]
        # The real port, so the server's own log lines say where it listens.
        full_env = server_env(root, {SERVER_ENV: "lean", PORT_ENV: str(port), **(env or {})})
        command = [sys.executable, str(ACTIVATION), str(listener.fileno()), *fleetcast_command("serve")]
        process = _spawn("lean", command, full_env, root / log_name, pass_fds=(listener.fileno(),))
    server = Server("lean", process, port, root / log_name)
    if wait:
        with _stopped_on_error(server):
            server.wait_ready(timeout)
    return server


def _free_mms_port(rng: random.Random) -> int:
    for port in rng.sample(MMS_PORTS, 200):
        with socket.socket() as probe:
            try:
                probe.bind((LOOPBACK, port))
            except OSError:
                continue
            return port
    raise ServerStartError(f"no free port in {MMS_PORTS.start}..{MMS_PORTS.stop} for Multi Model Server")


def start_mms(
    root: Path,
    env: Mapping[str, str] | None = None,
    *,
    wait: bool = True,
    timeout: float = STARTUP_SECONDS,
    log_name: str = "serve-mms.log",
) -> Server:
    """`FLEETCAST_SERVER=mms fleetcast serve` on a free port it is known to hold (see the module doc).

    With wait=False the first attempt is returned as it starts (no retry on a lost port).
    """
    rng = random.Random()
    lost: list[int] = []
    for _ in range(MMS_ATTEMPTS):
        port = _free_mms_port(rng)
        full_env = server_env(root, {SERVER_ENV: "mms", PORT_ENV: str(port), **(env or {})})
        log_path = root / log_name
        with contextlib.suppress(FileNotFoundError):
            log_path.unlink()  # a log of a lost attempt would mislead
        server = Server("mms", _spawn("mms", fleetcast_command("serve"), full_env, log_path), port, log_path)
        if not wait:
            return server
        with _stopped_on_error(server):
            if _mms_holds_its_port(server, timeout):
                return server
        server.stop()
        lost.append(port)
    raise ServerStartError(
        f"Multi Model Server lost its port to another process {MMS_ATTEMPTS} times: {lost}"
    )


def _mms_holds_its_port(server: Server, timeout: float) -> bool:
    """True once /ping answers and the listener is ours; False when another process holds the port."""
    deadline = time.monotonic() + timeout
    while True:
        family = server.family()
        ours = server.port in listening_ports(family)
        if not server.running():
            if any(marker in server.log() for marker in PORT_IN_USE_MARKERS):
                return False
            raise ServerStartError(
                f"mms exited with {server.process.returncode} during start-up; its log ends:\n"
                f"{server.log_tail()}"
            )
        if ours and http_status(server.url) == 200:
            return True
        if any(marker in server.log() for marker in PORT_IN_USE_MARKERS):
            return False
        if time.monotonic() > deadline:
            raise ServerStartError(
                f"mms did not answer /ping on {server.url} within {timeout:.0f} s; its log ends:\n"
                f"{server.log_tail()}"
            )
        time.sleep(0.1)


def start_server(kind: str, root: Path, env: Mapping[str, str] | None = None, **options) -> Server:
    """start_lean or start_mms by name, for tests parametrised over both servers."""
    starters = {"lean": start_lean, "mms": start_mms}
    if kind not in starters:
        raise ValueError(f"unknown server {kind!r}; choose one of {sorted(starters)}")
    return starters[kind](root, env, **options)


def start_local_endpoint(
    root: Path,
    *,
    models: str | Path,
    container: str,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = STARTUP_SECONDS,
    ready_statuses: Sequence[int] = (200,),
    log_name: str = "local-endpoint.log",
) -> Server:
    """`fleetcast local-endpoint --port 0` in front of `container`; the port is read from its socket."""
    command = fleetcast_command(
        "local-endpoint", "--models", str(models), "--container", container,
        "--host", LOOPBACK, "--port", "0", *args,
    )  # fmt: skip
    process = _spawn("local-endpoint", command, server_env(root, env), root / log_name)
    server = Server("local-endpoint", process, 0, root / log_name)
    with _stopped_on_error(server):
        deadline = time.monotonic() + timeout
        while not (ports := listening_ports(server.family())):
            if not server.running() or time.monotonic() > deadline:
                raise ServerStartError(
                    f"the local endpoint never listened; its log ends:\n{server.log_tail()}"
                )
            time.sleep(0.05)
        server.port = min(ports)
        server.wait_ready(max(1.0, deadline - time.monotonic()), statuses=tuple(ready_statuses))
    return server


@contextlib.contextmanager
def _stopped_on_error(server: Server) -> Iterator[None]:
    try:
        yield
    except BaseException:
        server.stop()
        raise


# ---- the Docker image ------------------------------------------------------------------------------


class DockerCli(Protocol):
    """What the harness needs from tests/container/conftest.py's Docker: the CLI and a cleanup label."""

    def run(
        self, *args: str, timeout: float = ..., check: bool = ...
    ) -> subprocess.CompletedProcess[str]: ...

    def container_args(self) -> list[str]: ...


@dataclass
class ContainerServer:
    """`docker run IMAGE serve` (or another command), published on a host port Docker picked."""

    docker: DockerCli
    name: str
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def running(self) -> bool:
        state = self.docker.run("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return state.stdout.strip() == "true"

    def log(self) -> str:
        logs = self.docker.run("logs", self.name, check=False)
        text = logs.stdout + logs.stderr
        if text:
            self.log_path.write_text(text)
            return text
        return self.log_path.read_text() if self.log_path.exists() else ""

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        return self.log()[-chars:]

    def wait_ready(self, timeout: float = STARTUP_SECONDS, path: str = "/ping") -> None:
        deadline = time.monotonic() + timeout
        while http_status(self.url, path) != 200:
            if not self.running():
                raise ServerStartError(f"container {self.name} exited during start-up:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"container {self.name} did not answer {path} within {timeout:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.25)

    def stop(self, grace: float = GRACE_SECONDS) -> None:
        """docker stop (SIGTERM, SIGKILL after `grace`), keeping the log, then remove the container."""
        self.docker.run("stop", "--time", str(int(grace)), self.name, check=False, timeout=grace + 60)
        self.log()
        self.docker.run("rm", "-f", self.name, check=False, timeout=120)

    def __enter__(self) -> ContainerServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_image(
    docker: DockerCli,
    image: str,
    name: str,
    root: Path,
    *,
    docker_args: Sequence[str] = (),
    command: Sequence[str] = ("serve",),
    container_port: int = 8080,
    wait: bool = True,
    timeout: float = STARTUP_SECONDS,
) -> ContainerServer:
    """Run the image detached with its port published on a loopback port Docker chooses."""
    docker.run(
        "run", "-d", "--name", name, *docker.container_args(),
        "-p", f"{LOOPBACK}::{container_port}", *docker_args, image, *command,
    )  # fmt: skip
    server = ContainerServer(docker, name, 0, root / f"{name}.log")
    try:
        published = docker.run("port", name, f"{container_port}/tcp").stdout.split()
        server.port = int(published[0].rpartition(":")[2])
        if wait:
            server.wait_ready(timeout)
    except BaseException:
        server.stop()
        raise
    return server
