"""The rule for tests whose tool is missing (Chromium, Playwright, GStreamer, /dev/full...):
on a developer's machine they skip, with the reason; under CI (``CI=true``) they fail, so a
green CI run has really run every test.

``missing_tool(reason)`` is what a fixture or test calls when its tool is absent. As a
pytest plugin (registered by tests/conftest.py) this module also turns any other skip
into a failure under CI (a ``pytest.skip`` or ``importorskip`` written elsewhere), naming
the skip's reason; expected failures (``xfail``) are left alone.
"""

from __future__ import annotations

import os
from typing import Mapping, NoReturn, Optional

import pytest

__all__ = ["missing_tool", "under_ci"]


def under_ci(environ: Optional[Mapping[str, str]] = None) -> bool:
    """True when ``CI`` is set to a true value (``true``, ``1``, ``yes``, ``on``), as CI
    services and ``.ci/run`` do."""
    value = (os.environ if environ is None else environ).get("CI", "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def missing_tool(reason: str, environ: Optional[Mapping[str, str]] = None) -> NoReturn:
    """Skip the test because ``reason`` (a missing tool), or fail it under CI."""
    if under_ci(environ):
        pytest.fail(f"{reason} (CI=true: a missing tool fails the run instead of skipping)", pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and under_ci():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where every test must run: {reason}"
