"""The SageMaker Python SDK v2 in a side venv (setup.sh), and a way to run driver.py with it.

The SDK is not a project dependency (v2 is headed for deprecation and pins its own boto3), so it lives in
its own venv under the cache dir; setup.sh makes it once and is quick after that. Without it the tests skip
with the reason (under FLEETCAST_CI=1, .ci/run, that skip fails the run).
"""

from __future__ import annotations

import json
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SETUP = HERE / "setup.sh"
DRIVER = HERE / "driver.py"
RESULT_MARKER = "SDK-LOCAL-MODE-RESULT "  # driver.py's, which cannot import from the tests


@pytest.fixture(scope="session")
def sdk_python() -> str:
    done = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, timeout=1200, check=False)
    if done.returncode != 0:
        pytest.skip(f"{SETUP.name} failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


@dataclass
class DriverRun:
    result: dict
    output: str


@dataclass
class SdkLocalMode:
    python: str
    env: dict[str, str]
    docker: object  # tests/container/conftest.py's Docker

    def run(self, *args: str, root: Path, timeout: float = 900) -> DriverRun:
        root.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run(
                [self.python, str(DRIVER), *args, "--root", str(root)],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        finally:
            self.remove_containers_under(root)
        output = done.stdout + done.stderr
        lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARKER)]
        assert lines, f"driver.py exited {done.returncode} without a result:\n{output[-6000:]}"
        return DriverRun(json.loads(lines[-1][len(RESULT_MARKER) :]), output)

    def remove_containers_under(self, root: Path) -> None:
        """docker-compose leaves the job's stopped containers behind; remove those of this run only."""
        label = "com.docker.compose.project.working_dir"
        listed = self.docker.run(
            "ps", "-a", "--filter", "label=com.docker.compose.project",
            "--format", f'{{{{.ID}}}} {{{{.Label "{label}"}}}}', check=False,
        )  # fmt: skip
        ids = [
            line.split()[0]
            for line in listed.stdout.splitlines()
            if len(line.split()) == 2 and line.split()[1].startswith(str(root))
        ]
        if ids:
            self.docker.run("rm", "-f", *ids, check=False, timeout=120)


@pytest.fixture(scope="session")
def sdk(sdk_python: str, docker) -> SdkLocalMode:
    env = {
        **docker.env,
        # Local mode makes a boto3 session; nothing may reach AWS, so no real credentials and no metadata
        # service lookups.
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "local-mode-test",
        "AWS_SECRET_ACCESS_KEY": "local-mode-test",
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONUNBUFFERED": "1",
    }
    return SdkLocalMode(sdk_python, env, docker)


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
