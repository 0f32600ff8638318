"""core.i18n: the language of a request, and a message for every error code the server sends."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.i18n import SUPPORTED, catalogue, error_message, negotiate, translate

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["core", "mediaserver", "paywall", "insight", "signalling", "interaction", "ops", "web", "stagepass"]


@pytest.mark.parametrize("header, cookie, expected", [
    (None, None, "en"),
    ("", None, "en"),
    ("zh-CN,zh;q=0.9,en;q=0.8", None, "zh-CN"),
    ("zh-TW", None, "zh-CN"),                      # the only Chinese catalogue
    ("en-GB,en;q=0.9,zh;q=0.8", None, "en"),
    ("fr-FR,fr;q=0.9,zh;q=0.5,en;q=0.4", None, "zh-CN"),  # the best supported one wins
    ("en;q=0.2, zh;q=0.8", None, "zh-CN"),          # by q, not by order
    ("zh;q=0, en", None, "en"),                     # q=0: not acceptable
    ("de, fr", None, "en"),
    ("zh;q=abc, en;q=0.5", None, "en"),             # a malformed q counts as 0
    ("zh-CN", "en", "en"),                          # the user's choice wins
    ("en", "zh-CN", "zh-CN"),
    ("en", "klingon", "en"),                        # an unknown cookie is ignored
])
def test_the_language_of_a_request(header, cookie, expected):
    assert negotiate(header, cookie) == expected


def test_translate_fills_placeholders_and_falls_back():
    assert translate("zh-CN", "room.starts_in", left="5:00") == "尚未开播——5:00后开始。"
    assert translate("en", "room.starts_in", left="5:00") == "Not live yet — starts in 5:00."
    assert translate("zh-CN", "no.such.key") == "no.such.key"
    assert translate("zh-CN", "no.such.key", default="fallback {x}", x=1) == "fallback 1"


def test_error_messages_stay_detailed_in_english_and_follow_the_code_in_chinese():
    assert error_message("en", "room_not_found", "no room named 'x'") == "no room named 'x'"
    assert error_message("zh-CN", "room_not_found", "no room named 'x'") == "找不到该直播间。"
    assert error_message("zh-CN", "never_heard_of", "as sent") == "as sent"


def _codes_in_source() -> set[str]:
    codes: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            codes |= set(re.findall(r'Refusal\(\s*\d+,\s*"([a-z_]+)"', text))
            codes |= set(re.findall(r'"code":\s*"([a-z_]+)"', text))
    return codes


def test_every_error_code_the_server_sends_has_a_message_in_every_language():
    codes = _codes_in_source()
    assert len(codes) > 150
    for lang in SUPPORTED:
        assert sorted(c for c in codes if f"error.{c}" not in catalogue(lang)) == [], lang
