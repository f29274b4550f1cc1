"""The Python versions pyproject.toml declares are the ones we run: this interpreter and the image's.

We run two: the image's (Debian bookworm's 3.11.2 in the stand-in base, the newest 3.11 in the real
python:3.11-slim) and the development and CI interpreter (3.11.7). The declared range covers both and no
minor version nothing here runs. tests/container/test_python_range.py checks the image's interpreter.
"""

from __future__ import annotations

import operator
import platform
import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
# The image's base (the Debian stand-in; see .ci/docker-engine.sh): the oldest interpreter we run.
OLDEST_WE_RUN = "3.11.2"
COMPARISONS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def in_declared_range(python: str) -> bool:
    """`python` satisfies requires-python (the plain comparisons we use: no wildcards, no ~=)."""
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["requires-python"]
    for clause in declared.split(","):
        match = re.fullmatch(r"\s*(>=|<=|==|>|<)\s*([\d.]+)\s*", clause)
        assert match, f"requires-python clause {clause!r} is not a plain comparison"
        wanted = version(match[2])
        have = version(python)[: len(wanted)] if match[1] == "==" else version(python)
        if not COMPARISONS[match[1]](have, wanted):
            return False
    return True


def test_this_interpreter_is_in_the_declared_range():
    assert in_declared_range(platform.python_version())


def test_the_range_is_what_we_run_and_no_wider():
    assert in_declared_range(OLDEST_WE_RUN)
    assert not in_declared_range("3.11.1")  # older than anything we run
    assert not in_declared_range("3.12.0")  # a minor version nothing here runs or tests
    # ruff's target (the syntax and library checks) is the declared minor version.
    target = tomllib.loads(PYPROJECT.read_text())["tool"]["ruff"]["target-version"]
    assert target == "py" + "".join(OLDEST_WE_RUN.split(".")[:2])
