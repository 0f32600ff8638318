"""Under ``CI=true`` a test whose tool is missing (Chromium, Playwright, GStreamer...) fails
instead of skipping, so a green CI run has really run every test; on a developer's machine
it still skips, with the reason. Checked by running pytest on small test files with the
suite's own plugins (tests/conftest.py), in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.missing_tools import missing_tool, under_ci

ROOT = Path(__file__).resolve().parent.parent

NEEDS_A_BROWSER = """
async def test_page(browser):
    assert browser is not None
"""

SKIPS = """
import pytest

def test_skipped_by_hand():
    pytest.skip("no frobnicator on this machine")
"""


def run_pytest(tmp_path: Path, source: str, ci: str | None) -> tuple[str, str]:
    """(outcome, output) of one test file run with the suite's plugins and a Chromium path
    that does not exist."""
    test = tmp_path / "test_probe.py"
    test.write_text(source)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["STAGEPASS_CHROMIUM"] = str(tmp_path / "no-chromium-here")
    if ci is not None:
        env["CI"] = ci
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path), str(test)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    out = r.stdout + r.stderr
    last = out.strip().splitlines()[-1]
    outcome = ("failed" if ("failed" in last or "error" in last) else
               "skipped" if "skipped" in last else "passed" if "passed" in last else last)
    return outcome, out


def test_the_decision():
    for value in ("true", "TRUE", "1", "yes", "on"):
        assert under_ci({"CI": value})
        with pytest.raises(pytest.fail.Exception, match="no gst-launch-1.0"):
            missing_tool("no gst-launch-1.0", {"CI": value})
    for environ in ({}, {"CI": ""}, {"CI": "false"}, {"CI": "0"}):
        assert not under_ci(environ)
        with pytest.raises(pytest.skip.Exception, match="no gst-launch-1.0"):
            missing_tool("no gst-launch-1.0", environ)


def test_under_ci_a_missing_chromium_fails_the_browser_tests(tmp_path):
    outcome, out = run_pytest(tmp_path, NEEDS_A_BROWSER, "true")
    assert outcome == "failed", out
    assert "no Chromium at" in out and "CI" in out, out


def test_on_a_developer_machine_a_missing_chromium_skips_with_the_reason(tmp_path):
    outcome, out = run_pytest(tmp_path, NEEDS_A_BROWSER, "false")
    assert outcome == "skipped" and "no Chromium at" in out, out


def test_under_ci_no_test_skips_whatever_the_reason(tmp_path):
    outcome, out = run_pytest(tmp_path, SKIPS, "true")
    assert outcome == "failed" and "no frobnicator on this machine" in out, out
