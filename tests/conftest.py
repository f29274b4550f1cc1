"""Fixtures shared by every test package, and the CI rule that a skipped test fails the run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# pytester runs real inner pytest sessions; tests/test_ci_skips.py uses it to test the hook below.
pytest_plugins = ("pytester",)

# .ci/run exports FLEETCAST_CI=1: there Java, the Docker engine and every tool are provided, so a test
# that skips is a test that did not run, and the run fails naming it. Elsewhere a skip stays a skip.
CI_VARIABLE = "FLEETCAST_CI"


class SkipsFailTheRun:
    """Collects every skipped test (or module) and turns a passing session into a failing one."""

    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []

    def _record(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        # An xfail is reported as skipped too, but it ran: it is not a silent pass.
        if report.skipped and not hasattr(report, "wasxfail"):
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            self.skipped.append((report.nodeid, reason))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.skipped and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.skipped:
            return
        title = f"{len(self.skipped)} skipped under {CI_VARIABLE}=1: the run fails"
        terminalreporter.section(title, red=True)
        for nodeid, reason in self.skipped:
            terminalreporter.line(f"SKIPPED {nodeid}: {reason}", red=True)


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get(CI_VARIABLE) == "1":
        config.pluginmanager.register(SkipsFailTheRun(), "fleetcast-skips-fail-the-run")


@pytest.fixture
def sm_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An /opt/ml-shaped root that the image's code uses via SAGEMAKER_BASE_DIR."""
    root = tmp_path / "opt_ml"
    (root / "input" / "config").mkdir(parents=True)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(root))
    return root
