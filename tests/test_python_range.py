"""The Python versions pyproject.toml declares are the ones we run: this interpreter and the image's.

We run two: the image's (Debian bookworm's 3.11.2 in the stand-in base, the newest 3.11 in the real
python:3.11-slim) and the development and CI interpreter (3.11.7). The declared range covers both and no
minor version nothing here runs. tests/container/test_python_range.py checks the image's interpreter.
"""

from __future__ import annotations

import platform
import tomllib
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
# The image's base (the Debian stand-in; see .ci/docker-engine.sh): the oldest interpreter we run.
OLDEST_WE_RUN = Version("3.11.2")


def declared_range() -> SpecifierSet:
    return SpecifierSet(tomllib.loads(PYPROJECT.read_text())["project"]["requires-python"])


def test_this_interpreter_is_in_the_declared_range():
    assert Version(platform.python_version()) in declared_range()


def test_the_range_is_what_we_run_and_no_wider():
    declared = declared_range()
    assert OLDEST_WE_RUN in declared
    assert Version("3.11.1") not in declared  # older than anything we run
    assert Version("3.12.0") not in declared  # a minor version nothing here runs or tests
    # ruff's target (the syntax and library checks) is the declared minor version.
    target = tomllib.loads(PYPROJECT.read_text())["tool"]["ruff"]["target-version"]
    assert target == f"py{OLDEST_WE_RUN.major}{OLDEST_WE_RUN.minor}"
