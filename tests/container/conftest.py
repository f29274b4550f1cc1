"""A Docker engine and the real image, once per test session.

An engine that already answers (DOCKER_HOST or the default socket) is used as it is; otherwise
.ci/docker-engine.sh provides one (installing Debian's docker.io and building the python:3.11-slim
stand-in if needed) and the session stops it at the end if it started it. Without any way to get an
engine the tests skip with the reason; under FLEETCAST_CI=1 (.ci/run) that skip fails the run
(tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE_SCRIPT = ROOT / ".ci" / "docker-engine.sh"
TEST_LABEL = "fleetcast-test-session"


def _unavailable(reason: str) -> None:
    pytest.skip(f"no Docker engine: {reason}")


def _engine_answers(env: dict[str, str]) -> bool:
    if shutil.which("docker", path=env.get("PATH")) is None:
        return False
    probe = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    return probe.returncode == 0


@dataclass
class Docker:
    """The docker CLI pointed at the session's engine; every container it starts is labelled for cleanup."""

    env: dict[str, str]
    session: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["docker", *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} exited {result.returncode}\n"
                f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
            )
        return result

    def container_args(self) -> list[str]:
        return ["--label", f"{TEST_LABEL}={self.session}"]

    def remove_session_containers(self) -> None:
        listed = self.run("ps", "-aq", "--filter", f"label={TEST_LABEL}={self.session}", check=False)
        ids = listed.stdout.split()
        if ids:
            self.run("rm", "-f", *ids, check=False, timeout=120)


@pytest.fixture(scope="session")
def docker() -> Iterator[Docker]:
    env = dict(os.environ)
    started_here = False
    if not _engine_answers(env):
        status = subprocess.run(
            ["bash", str(ENGINE_SCRIPT), "status"], capture_output=True, text=True, timeout=60, check=False
        )
        if status.returncode == 0:
            env["DOCKER_HOST"] = status.stdout.strip()
        else:
            if os.geteuid() != 0 and shutil.which("dockerd") is None:
                _unavailable("none is running and installing one needs root (see .ci/docker-engine.sh)")
            started = subprocess.run(
                ["bash", str(ENGINE_SCRIPT), "start"],
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            if started.returncode != 0:
                _unavailable(f".ci/docker-engine.sh start failed:\n{started.stderr[-3000:]}")
            env["DOCKER_HOST"] = started.stdout.strip().splitlines()[-1]
            started_here = True
    client = Docker(env)
    try:
        yield client
    finally:
        client.remove_session_containers()
        if started_here:
            subprocess.run(["bash", str(ENGINE_SCRIPT), "stop"], timeout=120, check=False)


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    build_seconds: float


@pytest.fixture(scope="session")
def image(docker: Docker) -> BuiltImage:
    """The repository's Dockerfile, built unmodified (the layer cache makes repeat sessions quick)."""
    tag = os.environ.get("FLEETCAST_TEST_IMAGE_TAG", "fleetcast:test")
    began = time.monotonic()
    docker.run("build", "--force-rm", "--tag", tag, str(ROOT), timeout=1800)
    seconds = time.monotonic() - began
    size = docker.run("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip()
    print(f"\nbuilt {tag} in {seconds:.1f}s, {int(size) / 1e6:.0f} MB")
    return BuiltImage(tag, seconds)
