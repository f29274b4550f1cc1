"""Under FLEETCAST_CI=1 (set by .ci/run) a skipped test fails the run; elsewhere it is only a skip.

Each case is a real inner pytest session (pytester) that loads the hook from tests/conftest.py.
"""

from __future__ import annotations

import pytest

from tests.conftest import CI_VARIABLE

SKIPPING_TESTS = """
import pytest

def test_runs():
    pass

def test_needs_a_tool():
    pytest.skip("the tool is not installed")
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv(CI_VARIABLE, raising=False)
    pytester.makeconftest("from tests.conftest import pytest_configure  # noqa: F401\n")
    return pytester


def test_a_skip_fails_the_run_under_the_ci_variable_and_names_the_test(suite, monkeypatch):
    suite.makepyfile(test_tools=SKIPPING_TESTS)
    monkeypatch.setenv(CI_VARIABLE, "1")
    result = suite.runpytest()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            f"*1 skipped under {CI_VARIABLE}=1: the run fails*",
            "SKIPPED test_tools.py::test_needs_a_tool: Skipped: the tool is not installed",
        ]
    )


def test_without_the_variable_a_skip_is_only_a_skip(suite):
    suite.makepyfile(test_tools=SKIPPING_TESTS)
    result = suite.runpytest()
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, skipped=1)
    assert "the run fails" not in result.stdout.str()


def test_a_skipped_module_fails_the_run_too(suite, monkeypatch):
    suite.makepyfile(
        test_runs="def test_runs():\n    pass\n",
        test_module_skip="""
        import pytest

        pytest.skip("no engine here", allow_module_level=True)

        def test_never_collected():
            pass
        """,
    )
    monkeypatch.setenv(CI_VARIABLE, "1")
    result = suite.runpytest()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED test_module_skip.py: Skipped: no engine here"])


def test_a_clean_run_and_an_expected_failure_still_pass_under_the_variable(suite, monkeypatch):
    suite.makepyfile(
        test_clean="""
        import pytest

        def test_runs():
            pass

        @pytest.mark.xfail(reason="a known bug, and the test ran")
        def test_known_bug():
            assert False
        """
    )
    monkeypatch.setenv(CI_VARIABLE, "1")
    result = suite.runpytest()
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, xfailed=1)
