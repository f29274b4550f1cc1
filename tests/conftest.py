"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def sm_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An /opt/ml-shaped root that the image's code uses via SAGEMAKER_BASE_DIR."""
    root = tmp_path / "opt_ml"
    (root / "input" / "config").mkdir(parents=True)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(root))
    return root
