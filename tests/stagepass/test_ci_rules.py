"""Under ``CI=true`` a test whose tool is missing (Chromium, Playwright, GStreamer...) fails
instead of skipping, so a green CI run has really run every test; on a developer's machine
it still skips, with the reason. Checked by running pytest on small test files with the
suite's own plugins (tests/conftest.py), in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.support.missing_tools import missing_tool, under_ci

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

PROBES = """
import pytest

async def test_page(browser):
    assert browser is not None

def test_skipped_by_hand():
    pytest.skip("no frobnicator on this machine")
"""


def run_pytest(tmp_path: Path, ci: str) -> tuple[dict[str, str], str]:
    """Outcomes (test name -> passed/failed/skipped/error) of ``PROBES`` run with the suite's
    plugins and a Chromium path that does not exist, and pytest's output."""
    test = tmp_path / "test_probe.py"
    test.write_text(PROBES)
    env = {**os.environ, "CI": ci, "STAGEPASS_CHROMIUM": str(tmp_path / "no-chromium-here")}
    report = tmp_path / "report.xml"
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path), f"--junitxml={report}", str(test)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    out = r.stdout + r.stderr
    outcomes = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[case.get("name")] = {"failure": "failed", "error": "error", "skipped": "skipped"}.get(
            kinds[0] if kinds else "", "passed")
    return outcomes, out


def test_the_decision():
    for value in ("true", "TRUE", "1", "yes", "on"):
        assert under_ci({"CI": value})
        with pytest.raises(pytest.fail.Exception, match="no gst-launch-1.0"):
            missing_tool("no gst-launch-1.0", {"CI": value})
    for environ in ({}, {"CI": ""}, {"CI": "false"}, {"CI": "0"}):
        assert not under_ci(environ)
        with pytest.raises(pytest.skip.Exception, match="no gst-launch-1.0"):
            missing_tool("no gst-launch-1.0", environ)


def test_under_ci_a_missing_chromium_and_any_other_skip_fail_the_run(tmp_path):
    outcomes, out = run_pytest(tmp_path, "true")
    assert outcomes == {"test_page": "error", "test_skipped_by_hand": "failed"}, out
    assert "no Chromium at" in out and "CI=true" in out and "no frobnicator on this machine" in out, out


def test_on_a_developer_machine_they_skip_with_the_reason(tmp_path):
    outcomes, out = run_pytest(tmp_path, "false")
    assert outcomes == {"test_page": "skipped", "test_skipped_by_hand": "skipped"}, out
    assert "no Chromium at" in out, out
