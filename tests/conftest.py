import os

import pytest

# Servers the tests start as processes list new rooms at once, as the in-process fixtures do
# (``paywall_settings``); the review queue for unverified creators is tested in test_trust.py.
os.environ.setdefault("STAGEPASS_REVIEW_UNVERIFIED", "off")

pytest_plugins = ("tests.support.missing_tools", "tests.support.live_server", "tests.support.paywall_fixtures",
                  "tests.support.replays", "tests.support.browser", "tests.support.gst")

# Helpers live in tests/support; these names stay importable from here for tests written
# before they moved (import them from tests.support.live_server / tests.support.waiting).
pytest.register_assert_rewrite("tests.support.live_server", "tests.support.waiting")
from tests.support.live_server import KEY  # noqa: E402,F401
from tests.support.waiting import wait_for  # noqa: E402,F401
