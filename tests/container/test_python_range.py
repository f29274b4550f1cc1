"""The image's interpreter is inside the Python range pyproject.toml declares (tests/test_python_range.py)."""

from __future__ import annotations

import pytest

from tests.test_python_range import in_declared_range

pytestmark = pytest.mark.container


def test_the_image_runs_a_declared_python(docker, image):
    result = docker.run(
        "run", "--rm", *docker.container_args(), "--entrypoint", "python", image.tag,
        "-c", "import platform; print(platform.python_version())",
    )  # fmt: skip
    version = result.stdout.strip()
    assert in_declared_range(version), f"the image runs Python {version}, outside requires-python"
