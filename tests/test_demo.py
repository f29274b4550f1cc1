"""`make demo` (local_test/demo.sh) end to end on a small fleet: every stage runs and says what it did.

The quick start is the first thing a new user runs, so its output is checked as a person reads it: each
stage's progress line is on screen (none swallowed by the script), and the paths it names exist.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "local_test" / "demo.sh"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_demo_runs_end_to_end_and_shows_every_stage(tmp_path: Path) -> None:
    if not (REPO / ".venv" / "bin" / "fleetcast").exists():
        pytest.skip("make demo runs .venv/bin/fleetcast; build it with `make venv`")
    out = tmp_path / "demo"
    env = {
        **os.environ,
        "FLEETCAST_DEMO_DIR": str(out),
        "FLEETCAST_DEMO_CUSTOMERS": "12",
        "FLEETCAST_DEMO_MMS_PORT": str(_free_port()),
        "FLEETCAST_DEMO_ENDPOINT_PORT": str(_free_port()),
    }
    done = subprocess.run(
        ["bash", str(DEMO)], env=env, capture_output=True, text=True, timeout=540, check=False
    )
    shown = done.stdout + done.stderr
    assert done.returncode == 0, shown[-4000:]
    # Every stage's own progress line reaches the screen, the report's included.
    for line in (
        "fleetcast.data.generate: wrote",
        "split done: 12 customers",
        "published run",
        "fleetcast.forecast: forecast 12/12 customers",
        f"fleetcast.report: wrote {out}/report.html: 12 customers",
        "customer 0: 7 steps from fleetcast",
    ):
        assert line in shown, f"{line!r} not shown:\n{shown[-4000:]}"
    # Naive can be shipped, so the accuracy line speaks of the shipped model, not of Prophet.
    assert "the shipped model beats naive for" in shown
    report_line = [line for line in done.stdout.splitlines() if line.startswith("fleet report: ")]
    assert len(report_line) == 1
    report = Path(report_line[0].removeprefix("fleet report: "))
    assert report.is_absolute() and report == (out / "report.html").resolve()
    assert "fleetcast fleet report" in report.read_text()
    assert done.stdout.rstrip().endswith(f"everything it wrote is under {out}/")
