"""A pytest plugin: under CI (``CI`` set and not ``0``/``false``) a skipped test is a failed test.

A test that can silently not run proves nothing. Locally a test may still skip when this machine
lacks something (Chromium, the shared AdventureWorks set); its skip reason says what and how to
get it. CI machines have everything, so there a skip means a broken set-up and fails the run:

- a test (or fixture) that calls ``pytest.skip`` or carries a ``skip``/``skipif`` mark is reported
  as failed, with the skip reason;
- a module skipped while collecting (``pytest.importorskip`` at module level) fails the session.

Loaded by ``tests/conftest.py`` (``pytest_plugins``); ``.ci/run`` exports ``CI=1``.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest


def ci_enabled() -> bool:
    """``CI`` as CI services set it (``true``, ``1``); empty, ``0`` or ``false`` mean "not CI"."""
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr: Any = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: reason")
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.skipped and ci_enabled() and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, which must run every test: {_reason(report)}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not ci_enabled():
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        if reporter is not None:
            for report in skipped:
                reporter.write_line(f"CI: skipped {report.nodeid}: {_reason(report)}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
