"""CI runs every test: ``.ci/run`` sets ``CI`` and, under CI, a skipped test fails the run."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SKIPPING_TESTS = """
import pytest

def test_runs():
    pass

def test_skips_itself():
    pytest.skip("no widget on this machine")

@pytest.fixture
def needs_widget():
    pytest.skip("fixture found no widget")

def test_skipped_by_its_fixture(needs_widget):
    pass

@pytest.mark.skipif(True, reason="marked away")
def test_marked_skip():
    pass

@pytest.mark.xfail(reason="known bug")
def test_expected_failure():
    assert False
"""


def test_ci_script_exports_ci() -> None:
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "export CI=1" in lines
    assert lines.index("export CI=1") < lines.index("make test"), "CI must be set before the tests run"


def test_under_ci_every_skip_is_a_failure(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_widgets=SKIPPING_TESTS)
    monkeypatch.setenv("CI", "1")
    result = pytester.runpytest_inprocess("-p", "tests.ci_no_skip", "-p", "no:cacheprovider")
    # A skip in the call phase reads as a failure, one in set-up (fixture, mark) as an error.
    result.assert_outcomes(passed=1, failed=1, errors=2, xfailed=1)
    result.stdout.fnmatch_lines(["*skipped under CI*no widget on this machine*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_under_ci_a_module_skipped_at_collection_fails_the_session(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        test_browser="""
import pytest
pytest.importorskip("no_such_module_anywhere", reason="needs no_such_module_anywhere")

def test_page():
    pass
"""
    )
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest_inprocess("-p", "tests.ci_no_skip", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*CI: skipped*needs no_such_module_anywhere*"])


def test_outside_ci_a_skip_stays_a_skip(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_widgets=SKIPPING_TESTS)
    monkeypatch.delenv("CI", raising=False)
    result = pytester.runpytest_inprocess("-p", "tests.ci_no_skip", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=3, xfailed=1)
    assert result.ret == pytest.ExitCode.OK
