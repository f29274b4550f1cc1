"""build_and_push.sh against a moto server (STS, ECR) with the real aws CLI.

Only `docker` is a stand-in here: a PATH shim that records its arguments (and the password piped to
`docker login`), because no registry is reachable to push to. The real `docker build` of the same
Dockerfile is exercised by tests/container.
"""

from __future__ import annotations

import base64
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

# Real server processes (or the aws CLI and a moto server) start here: not for `make test-fast`.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "build_and_push.sh"
REGION = "eu-west-1"

DOCKER_SHIM = """#!/usr/bin/env bash
# Stand-in for the docker client: records each call, one line per call, arguments separated by tabs.
log=${DOCKER_SHIM_LOG:?}
if [[ $1 == login ]]; then
    printf 'login\\t%s\\tpassword=%s\\n' "${*:2}" "$(cat)" >>"$log"
    exit 0
fi
(IFS=$'\\t'; printf '%s\\n' "$*") >>"$log"
if [[ $1 == version ]]; then
    [[ ${DOCKER_SHIM_ENGINE:-up} == up ]] || { echo "Cannot connect to the Docker daemon" >&2; exit 1; }
    echo 20.10.24
fi
"""


def _aws_cli() -> str:
    """The aws CLI installed beside this Python (the project venv), else a working one on PATH."""
    candidates = [Path(sys.executable).with_name("aws"), shutil.which("aws")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            ok = subprocess.run([str(candidate), "--version"], capture_output=True, check=False, timeout=60)
            if ok.returncode == 0:
                return str(candidate)
    # A skip, which under FLEETCAST_CI=1 (.ci/run, where `make venv` installs awscli) fails the run.
    pytest.skip("the aws CLI (awscli in requirements/dev.txt) is not installed; run `make venv`")


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _link_tools(bin_dir: Path, names: list[str]) -> None:
    for name in names:
        target = shutil.which(name)
        assert target, f"{name} is needed on PATH to run build_and_push.sh"
        (bin_dir / name).symlink_to(target)


@pytest.fixture
def shim(tmp_path: Path) -> dict[str, Path]:
    """A bin dir holding the docker shim, the aws CLI and the few tools the script calls, and nothing else."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(DOCKER_SHIM)
    docker.chmod(docker.stat().st_mode | stat.S_IXUSR)
    (bin_dir / "aws").symlink_to(_aws_cli())
    _link_tools(bin_dir, ["bash", "env", "git", "dirname", "sed", "cat"])
    return {"bin": bin_dir, "log": tmp_path / "docker-calls.log", "home": tmp_path}


def _env(shim: dict[str, Path], endpoint: str | None, **extra: str) -> dict[str, str]:
    env = {
        "PATH": str(shim["bin"]),
        "HOME": str(shim["home"]),
        "DOCKER_SHIM_LOG": str(shim["log"]),
        # Never read the developer's own AWS setup, never ask an instance metadata service.
        "AWS_CONFIG_FILE": str(shim["home"] / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(shim["home"] / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if endpoint:
        env |= {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
    return env | extra


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _calls(shim: dict[str, Path]) -> list[list[str]]:
    if not shim["log"].exists():
        return []
    return [line.split("\t") for line in shim["log"].read_text().splitlines()]


def _ecr(endpoint: str):
    return boto3.client(
        "ecr",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_creates_repository_logs_in_builds_tags_and_pushes(moto_endpoint, shim):
    result = _run(["--region", REGION, "fleetcast-push", "v1"], _env(shim, moto_endpoint))
    assert result.returncode == 0, result.stderr

    repo = _ecr(moto_endpoint).describe_repositories(repositoryNames=["fleetcast-push"])["repositories"][0]
    uri = repo["repositoryUri"]
    assert f".dkr.ecr.{REGION}." in uri
    assert result.stdout.strip().splitlines()[-1] == f"{uri}:v1"

    token = _ecr(moto_endpoint).get_authorization_token()["authorizationData"][0]["authorizationToken"]
    password = base64.b64decode(token).decode().split(":", 1)[1]
    calls = _calls(shim)
    registry = uri.split("/")[0]
    assert ["login", f"--username AWS --password-stdin {registry}", f"password={password}"] in calls
    build = next(c for c in calls if c[0] == "build")
    assert build == ["build", "--tag", "fleetcast-push:v1", "--tag", "fleetcast-push:latest", str(ROOT)]
    assert ["push", f"{uri}:v1"] in calls
    assert ["push", f"{uri}:latest"] in calls
    # Login comes before any push, and the build before the tags it pushes.
    order = [c[0] for c in calls]
    assert order.index("login") < order.index("build") < order.index("tag") < order.index("push")


def test_existing_repository_is_reused_and_region_comes_from_environment(moto_endpoint, shim):
    ecr = _ecr(moto_endpoint)
    ecr.create_repository(repositoryName="fleetcast-existing")
    result = _run(["fleetcast-existing", "v2"], _env(shim, moto_endpoint, AWS_DEFAULT_REGION=REGION))
    assert result.returncode == 0, result.stderr
    assert "creating ECR repository" not in result.stderr
    names = [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]
    assert names.count("fleetcast-existing") == 1
    assert result.stdout.strip().endswith("/fleetcast-existing:v2")


def test_default_tag_is_the_short_commit(moto_endpoint, shim):
    short = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    result = _run(["--no-push", "fleetcast-sha"], _env(shim, None))
    assert result.returncode == 0, result.stderr
    tag = result.stdout.strip().splitlines()[-1].split(":")[1]
    assert tag in (short, f"{short}-dirty")


def test_no_push_builds_without_touching_aws(shim):
    result = _run(["--no-push", "fleetcast-local", "dev"], _env(shim, None))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "fleetcast-local:dev"
    commands = [c[0] for c in _calls(shim)]
    assert "build" in commands
    assert "login" not in commands
    assert "push" not in commands


def test_missing_credentials_fail_clearly_before_building(moto_endpoint, shim):
    env = _env(shim, None, AWS_ENDPOINT_URL=moto_endpoint)
    result = _run(["--region", REGION, "fleetcast-nocreds", "v1"], env)
    assert result.returncode != 0
    assert "AWS credentials are missing or not valid" in result.stderr
    assert "build" not in [c[0] for c in _calls(shim)]


def test_missing_region_fails_clearly(moto_endpoint, shim):
    result = _run(["fleetcast-noregion", "v1"], _env(shim, moto_endpoint))
    assert result.returncode != 0
    assert "no AWS region" in result.stderr


def test_missing_docker_fails_clearly(moto_endpoint, shim):
    (shim["bin"] / "docker").unlink()
    result = _run(["--region", REGION, "fleetcast-nodocker", "v1"], _env(shim, moto_endpoint))
    assert result.returncode != 0
    assert "docker not found on PATH" in result.stderr


def test_unreachable_engine_fails_clearly(moto_endpoint, shim):
    env = _env(shim, moto_endpoint, DOCKER_SHIM_ENGINE="down")
    result = _run(["--region", REGION, "fleetcast-noengine", "v1"], env)
    assert result.returncode != 0
    assert "cannot reach a Docker engine" in result.stderr


@pytest.mark.parametrize(("name", "tag"), [("Upper", "v1"), ("ok", "bad tag"), ("ok", ".lead")])
def test_invalid_names_and_tags_are_rejected(shim, name, tag):
    result = _run(["--no-push", name, tag], _env(shim, None))
    assert result.returncode != 0
    assert "not a valid" in result.stderr
    assert _calls(shim) == []
