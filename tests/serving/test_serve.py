"""`fleetcast serve` start-up decisions that need no Java: server choice, Java check, JVM heap, env checks."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetcast.cli import main
from fleetcast.serving import serve
from fleetcast.serving.environment import ServingEnvironment
from fleetcast.serving.mms import supervisor

GIB = 1024**3


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """serve writes the knobs MMS reads into os.environ; give every test its own copy to restore."""
    kept = ("TMPDIR", "TEMP", "PATH", "SAGEMAKER_BIND_TO_PORT", "SAGEMAKER_MULTI_MODEL")
    cleared = (
        "FLEETCAST_SERVER",
        "FLEETCAST_BIND_HOST",
        "SAGEMAKER_MODEL_SERVER_VMARGS",
        "FLEETCAST_MAX_PERIOD",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB",
        "JAVA_HOME",
    )
    for name in (*kept, *cleared):
        original = os.environ.get(name)
        monkeypatch.setenv(name, original or "")  # records the original value (or its absence) for undo
        if original is None or name in cleared:
            monkeypatch.delenv(name)


def test_lean_is_the_default_server_and_mms_one_variable_away(monkeypatch, caplog):
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "http")  # makes whichever server starts stop at once
    with caplog.at_level(logging.ERROR):
        assert main(["serve"]) == 2
    assert [r.name for r in caplog.records if "is not a TCP port" in r.getMessage()] == [
        "fleetcast.serving.serve"
    ]
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "8080")
    monkeypatch.setenv("FLEETCAST_MAX_PERIOD", "0")  # read once, before either server starts
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert main(["serve"]) == 2
    assert "FLEETCAST_MAX_PERIOD='0'" in caplog.text
    # FLEETCAST_SERVER=mms picks MMS: with no Java it says so (the lean server needs none)
    monkeypatch.delenv("FLEETCAST_MAX_PERIOD")
    monkeypatch.setenv("FLEETCAST_SERVER", "mms")
    monkeypatch.setenv("JAVA_HOME", "/nonexistent-jdk")
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert main(["serve"]) == 2
    assert "Java was not found" in caplog.text


def test_unknown_server_is_refused(monkeypatch, caplog):
    monkeypatch.setenv("FLEETCAST_SERVER", "tomcat")
    with caplog.at_level(logging.ERROR):
        assert serve.serve_main() == 2
    assert "'tomcat' is not a server; choose lean or mms" in caplog.text


def test_missing_java_fails_with_an_instruction(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("FLEETCAST_SERVER", "mms")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with caplog.at_level(logging.ERROR):
        assert serve.serve_main() == 2
    assert "Java was not found" in caplog.text and "openjdk-17-jre-headless" in caplog.text


@pytest.mark.parametrize(
    ("memory", "heap"),
    [(1 * GIB, "-Xmx256m"), (4 * GIB, "-Xmx256m"), (24 * GIB, "-Xmx768m"), (256 * GIB, "-Xmx1024m")],
)
def test_default_jvm_heap_is_small_and_scaled(memory, heap):
    assert heap in supervisor.default_vmargs(memory).split()


def test_what_mms_is_told_through_the_environment(monkeypatch, tmp_path):
    supervisor._configure_environment(ServingEnvironment.read(), tmp_path)
    assert os.environ["SAGEMAKER_MULTI_MODEL"] == "false"  # unset: single-model, as sagemaker-inference
    assert os.environ["SAGEMAKER_BIND_TO_PORT"] == "8080"
    assert os.environ["TMPDIR"] == os.environ["TEMP"] == str(tmp_path)
    assert "-Xmx" in os.environ["SAGEMAKER_MODEL_SERVER_VMARGS"]

    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_VMARGS", "-Xmx2g")
    supervisor._configure_environment(ServingEnvironment.read(port=9999), tmp_path)
    assert os.environ["SAGEMAKER_MODEL_SERVER_VMARGS"] == "-Xmx2g"
    assert os.environ["SAGEMAKER_BIND_TO_PORT"] == "9999"


def test_a_port_mms_cannot_take_fails_at_start(tmp_path):
    with pytest.raises(supervisor.ServeError, match="only accepts ports up to 32767"):
        supervisor._configure_environment(ServingEnvironment.read(port=40000), tmp_path)


def test_stale_run_dirs_of_killed_servers_are_removed(tmp_path):
    def run_dir(name: str, pid: int | None, age: float = 0) -> Path:
        path = tmp_path / f"fleetcast-mms-{name}"
        path.mkdir()
        (path / "sagemaker-mms.properties").write_text("x=1\n")
        if pid is not None:
            (path / ".model_server.pid").write_text(str(pid))
        if age:
            os.utime(path, (time.time() - age, time.time() - age))
        return path

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live_dir = tmp_path / "fleetcast-mms-live"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(live_dir)])
    try:
        killed = run_dir("killed", dead.pid)
        reused = run_dir("reused", os.getpid())  # a pid now owned by some other process
        run_dir("live", live.pid)
        starting = run_dir("starting", None)
        ancient = run_dir("ancient", None, age=2 * 24 * 3600)
        unrelated = tmp_path / "something-else"
        unrelated.mkdir()

        assert supervisor.remove_stale_run_dirs(tmp_path) == 3
        assert not killed.exists() and not reused.exists() and not ancient.exists()
        assert live_dir.exists() and starting.exists() and unrelated.exists()
    finally:
        live.kill()
        live.wait()
