"""Multi Model Server, the reference server (`FLEETCAST_SERVER=mms fleetcast serve`).

It starts Multi Model Server through sagemaker-inference's `start_model_server` in multi-model mode,
with `fleetcast.serving.mms.handler` as the handler service, and deals with MMS's known traps:

- config: sagemaker-inference writes `/etc/sagemaker-mms.properties`; we write it to a private run
  directory instead (works without root, and two servers on one machine never share it);
- the MMS launcher refuses to start when *any* pid file sits in `$TMPDIR`, and MMS puts its worker
  sockets in `$TEMP` named only by port: the private run directory holds both, per server;
- sagemaker-inference finds "the" MMS process by scanning every process on the machine (it fails when
  another MMS runs) and retries for 10 minutes when MMS never starts: we look among our own children;
- JVM heap: the default sizes it from the host (GBs); we default to a small, memory-scaled `-Xmx`;
- logs: MMS's default config drops the handler's log lines and writes files under `./logs`; ours sends
  MMS and handler lines to stdout (CloudWatch reads stdout);
- SIGTERM: sagemaker-inference only forwards it to Java, which can leave per-model worker processes
  behind; we become the "subreaper" of everything MMS starts, stop Java, then stop any survivor, all
  well inside the 30 s SageMaker allows before SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import psutil

from fleetcast.serving.environment import MULTI_MODEL_ENV, PORT_ENV, VMARGS_ENV, ServingEnvironment
from fleetcast.serving.memory import memory_limit_bytes

log = logging.getLogger(__name__)

HANDLER_SERVICE = "fleetcast.serving.mms.handler"
MAX_MMS_PORT = 32767  # MMS parses the port as a Java short
MMS_JAVA_CLASS = "com.amazonaws.ml.mms.ModelServer"
# After SIGTERM: Java gets this long to stop its workers, the survivors this long after SIGTERM. SageMaker
# sends SIGKILL 30 s after SIGTERM: at worst these add up to ~20 s (stop_leftovers' kills included), which
# leaves a loaded machine room (12 + 5 once took over 30 s in CI).
JAVA_STOP_SECONDS = 10.0
WORKER_STOP_SECONDS = 3.0
ORPHAN_CHECK_SECONDS = 2.0
# Unix socket paths must stay under 108 bytes; MMS appends "/.mms.sock.<port>".
MAX_RUN_DIR_LENGTH = 80
PR_SET_CHILD_SUBREAPER = 36
RUN_DIR_PREFIX = "fleetcast-mms-"
STALE_RUN_DIR_SECONDS = 24 * 3600

JAVA_MISSING = (
    "Java was not found: Multi Model Server needs a Java runtime (11 or newer). Install one, e.g. "
    "`apt-get install -y openjdk-17-jre-headless` (the fleetcast image does), or set JAVA_HOME."
)

# stdout only: MMS's lifecycle lines and the handler's own log lines (MODEL_LOG), no log files.
LOG4J2_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration>
    <Appenders>
        <Console name="STDOUT" target="SYSTEM_OUT">
            <PatternLayout pattern="%d{ISO8601} [%-5p] %c{1} - %m%n"/>
        </Console>
    </Appenders>
    <Loggers>
        <Logger name="ACCESS_LOG" level="${env:FLEETCAST_ACCESS_LOG_LEVEL:-warn}"/>
        <Logger name="io.netty" level="error"/>
        <Logger name="org.apache" level="off"/>
        <Logger name="MODEL_LOG" level="info"/>
        <Logger name="MODEL_METRICS" level="warn"/>
        <Logger name="MMS_METRICS" level="warn"/>
        <Logger name="com.amazonaws.ml.mms" level="info"/>
        <Root level="warn">
            <AppenderRef ref="STDOUT"/>
        </Root>
    </Loggers>
</Configuration>
"""


class ServeError(RuntimeError):
    """A server that cannot start; the message says what to do."""


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidate = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not candidate or not os.access(candidate, os.X_OK):
        raise ServeError(JAVA_MISSING)
    return candidate


def default_vmargs(memory_bytes: int) -> str:
    """The JVM only routes requests; its heap stays small (1/32 of memory, 256 MB..1 GB)."""
    heap_mb = max(256, min(1024, memory_bytes // (32 * 1024 * 1024)))
    # -XX:-UseContainerSupport is sagemaker-inference's own default; SerialGC keeps the JVM's threads few.
    return f"-Xms64m -Xmx{heap_mb}m -XX:+UseSerialGC -XX:-UseContainerSupport"


def _make_run_dir() -> Path:
    base = tempfile.gettempdir()
    if len(base) > MAX_RUN_DIR_LENGTH - 30 and os.access("/tmp", os.W_OK):
        base = "/tmp"
    removed = remove_stale_run_dirs(Path(base))
    if removed:
        log.info("removed %d run dir(s) left by servers that were killed", removed)
    return Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX, dir=base))


def remove_stale_run_dirs(base: Path) -> int:
    """Delete run dirs of servers killed before they could clean up (SIGKILL, OOM killer).

    A run dir is live while the Java process named in its pid file runs with that dir on its command
    line; a dir without a pid file belongs to a server still starting, unless it is a day old.
    """
    removed = 0
    for run_dir in base.glob(f"{RUN_DIR_PREFIX}*"):
        try:
            pid_text = (run_dir / ".model_server.pid").read_text().strip()
        except FileNotFoundError:
            pid_text = ""
        except OSError:
            continue
        if pid_text.isdigit():
            try:
                live = str(run_dir) in " ".join(psutil.Process(int(pid_text)).cmdline())
            except psutil.Error:
                live = False
        else:
            try:
                live = time.time() - run_dir.stat().st_mtime < STALE_RUN_DIR_SECONDS
            except OSError:
                continue
        if not live:
            shutil.rmtree(run_dir, ignore_errors=True)
            removed += 1
    return removed


def _become_subreaper() -> bool:
    """Adopt orphaned descendants (MMS's launcher exits after starting Java), so none escape cleanup."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _configure_environment(settings: ServingEnvironment, run_dir: Path) -> None:
    """Set what sagemaker-inference and MMS read from the environment (they read it themselves)."""
    if settings.port > MAX_MMS_PORT:
        raise ServeError(
            f"{PORT_ENV}={settings.port}: Multi Model Server only accepts ports up to {MAX_MMS_PORT}"
        )
    env = os.environ
    env[MULTI_MODEL_ENV] = "true" if settings.multi_model else "false"
    env[PORT_ENV] = str(settings.port)
    env[VMARGS_ENV] = settings.vmargs or default_vmargs(memory_limit_bytes())
    # The MMS launcher keeps its pid file in $TMPDIR, Java its worker sockets in $TEMP.
    env["TMPDIR"] = env["TEMP"] = str(run_dir)
    # The `multi-model-server` launcher is installed beside this interpreter (a venv may not be on PATH).
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    if not shutil.which("multi-model-server"):
        raise ServeError("the multi-model-server launcher is not installed (pip install multi-model-server)")


class MmsSupervisor:
    """Finds the MMS Java process among our children, stops workers MMS loses track of, and stops
    Java and every worker on SIGTERM."""

    def __init__(self) -> None:
        self.java: psutil.Process | None = None
        self.stopping = threading.Event()
        self.me = psutil.Process()
        self._orphans_seen: dict[int, float] = {}

    def descendants(self) -> list[psutil.Process]:
        try:
            return self.me.children(recursive=True)
        except psutil.Error:
            return []

    def find_java(self, startup_timeout: float) -> psutil.Process:
        started = time.monotonic()
        while time.monotonic() - started < startup_timeout:
            if self.stopping.is_set():
                raise ServeError("stopped before Multi Model Server had started")
            launching = False
            for process in self.descendants():
                try:
                    if process.status() == psutil.STATUS_ZOMBIE:
                        continue
                    if MMS_JAVA_CLASS in process.cmdline():
                        self.java = process
                        threading.Thread(target=self._stop_orphans, name="mms-orphans", daemon=True).start()
                        return process
                    launching = True
                except psutil.Error:
                    continue
            if not launching and time.monotonic() - started > 5:
                raise ServeError(
                    "Multi Model Server did not start (its launcher exited); see the lines above"
                )
            time.sleep(0.1)
        raise ServeError(f"Multi Model Server did not start within {startup_timeout:.0f} s")

    def _stop_orphans(self) -> None:
        """Once Java runs, our only legitimate child is Java: any other child is a worker process MMS
        lost (it happens after a 507 load), re-parented to us. Stop it, or it holds memory forever."""
        while not self.stopping.wait(ORPHAN_CHECK_SECONDS):
            try:
                children = self.me.children(recursive=False)
            except psutil.Error:
                continue
            now = time.monotonic()
            for child in children:
                if self.java is None or child.pid == self.java.pid:
                    continue
                try:
                    if child.status() == psutil.STATUS_ZOMBIE:
                        continue
                    first_seen = self._orphans_seen.setdefault(child.pid, now)
                    if first_seen == now:
                        log.warning(
                            "stopping process %d that MMS left behind: %s", child.pid, child.cmdline()[:4]
                        )
                        child.terminate()
                    elif now - first_seen > WORKER_STOP_SECONDS:
                        child.kill()
                except psutil.Error:
                    continue
            alive = {child.pid for child in children}
            self._orphans_seen = {pid: seen for pid, seen in self._orphans_seen.items() if pid in alive}

    def on_signal(self, signum: int, frame: Any) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        log.info("received %s: stopping Multi Model Server", signal.Signals(signum).name)
        threading.Thread(target=self._stop_java, name="mms-stop", daemon=True).start()

    def _stop_java(self) -> None:
        """SIGTERM Java (as soon as it is known), SIGKILL it if it is still there at the deadline."""
        deadline = time.monotonic() + JAVA_STOP_SECONDS
        signalled = None
        while time.monotonic() < deadline:
            java = self.java
            if java is not None:
                if java is not signalled:
                    self._send(java, signal.SIGTERM)
                    signalled = java
                try:
                    if java.status() == psutil.STATUS_ZOMBIE:
                        return
                except psutil.Error:
                    return
            time.sleep(0.1)
        if self.java is not None:
            log.warning("Multi Model Server did not stop within %.0f s; killing it", JAVA_STOP_SECONDS)
            self._send(self.java, signal.SIGKILL)

    @staticmethod
    def _send(process: psutil.Process | None, sig: int) -> None:
        if process is None:
            return
        with contextlib.suppress(psutil.Error):
            process.send_signal(sig)

    def stop_leftovers(self) -> int:
        """Terminate (then kill) every process MMS left behind; returns how many there were.

        Repeated because a launcher stopped mid-start may just have started Java.
        """
        stopped = 0
        for attempt in range(3):
            leftovers = self.descendants()
            if not leftovers:
                break
            stopped += len(leftovers)
            for process in leftovers:
                self._send(process, signal.SIGTERM)
            _, alive = psutil.wait_procs(leftovers, timeout=WORKER_STOP_SECONDS if attempt == 0 else 1)
            for process in alive:
                self._send(process, signal.SIGKILL)
            psutil.wait_procs(alive, timeout=2)
        return stopped


def _patch_model_server(
    model_server: Any, supervisor: MmsSupervisor, run_dir: Path, settings: ServingEnvironment
) -> None:
    """Point sagemaker-inference's start_model_server at our run dir, logging, process lookup, signals."""
    model_server.ENABLE_MULTI_MODEL = settings.multi_model
    model_server.MMS_CONFIG_FILE = str(run_dir / "sagemaker-mms.properties")
    log_config = run_dir / "log4j2.xml"
    log_config.write_text(LOG4J2_XML)
    model_server.DEFAULT_MMS_LOG_FILE = str(log_config)

    generate = model_server._generate_mms_config_properties

    def generate_with_overrides(env: Any, handler_service: Any = None) -> str:
        # Properties files keep the last value of a key: these lines override sagemaker-inference's.
        address = f"http://{settings.host}:{env.inference_http_port}"
        # MMS answers an over-long body with an empty 413; with its own limit above ours, the handler
        # answers instead, with a JSON error that names the limit.
        frame_limit = 2 * settings.limits.max_payload_bytes
        overrides = (
            f"inference_address={address}\nmanagement_address={address}\nmax_request_size={frame_limit}\n"
        )
        return generate(env, handler_service) + overrides

    model_server._generate_mms_config_properties = generate_with_overrides
    model_server._retry_retrieve_mms_server_process = supervisor.find_java

    def add_signal_handlers(mms_process: Any) -> None:
        signal.signal(signal.SIGTERM, supervisor.on_signal)
        signal.signal(signal.SIGINT, supervisor.on_signal)

    model_server._add_sigterm_handler = add_signal_handlers
    # Its SIGCHLD reaper logs an ERROR whenever no child is left to reap; reap quietly instead.
    model_server._add_sigchild_handler = _reap_children_from_now_on
    # Its logger has its own stderr handler besides ours: every line would appear twice.
    logging.getLogger("sagemaker-inference").handlers.clear()


def _reap_children_from_now_on() -> None:
    signal.signal(signal.SIGCHLD, _reap_children)
    _reap_children(signal.SIGCHLD, None)  # the MMS launcher has already exited: reap it now


def _reap_children(signum: int, frame: Any) -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def run_mms(settings: ServingEnvironment) -> int:
    """Run Multi Model Server until SIGTERM; returns the exit code (ServeError: it cannot start)."""
    find_java()
    run_dir = _make_run_dir()
    supervisor = MmsSupervisor()
    try:
        _configure_environment(settings, run_dir)
        _become_subreaper()
        # sagemaker-inference reads SAGEMAKER_MULTI_MODEL when imported: import after the defaults are set.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "pkg_resources is deprecated", not ours to fix
            from sagemaker_inference import model_server

        _patch_model_server(model_server, supervisor, run_dir, settings)
        # Before start_model_server installs its handlers, a SIGTERM still has to stop what it started.
        signal.signal(signal.SIGTERM, supervisor.on_signal)
        log.info(
            "starting Multi Model Server (multi-model=%s) on %s:%d, handler %s, %s workers per model, JVM %s",
            settings.multi_model,
            settings.host,
            settings.port,
            HANDLER_SERVICE,
            settings.workers or 1,
            os.environ[VMARGS_ENV],  # ours by default (see _configure_environment)
        )
        model_server.start_model_server(handler_service=HANDLER_SERVICE)  # blocks until Java exits
    except ServeError:
        if not supervisor.stopping.is_set():
            raise
    finally:
        left = supervisor.stop_leftovers()
        if left:
            log.info("stopped %d process(es) Multi Model Server left behind", left)
        shutil.rmtree(run_dir, ignore_errors=True)
    if supervisor.stopping.is_set():
        log.info("Multi Model Server stopped")
        return 0
    log.error("Multi Model Server exited on its own; see its log lines above")
    return 1
