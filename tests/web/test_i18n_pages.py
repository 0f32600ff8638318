"""Every text of every page and every key the scripts use is in both catalogues."""

from __future__ import annotations

import json
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from core.i18n import SUPPORTED, catalogue

pytestmark = pytest.mark.unit

STATIC = Path(__file__).resolve().parents[2] / "web" / "static"
PAGES = sorted(STATIC.glob("*.html"))
SCRIPTS = sorted(STATIC.glob("*.js"))
TRANSLATED_ATTRIBUTES = ("placeholder", "aria-label", "title")
#: t("key") and keys written into markup by scripts; plural("key", n) uses key.one and key.other
KEY_IN_SCRIPT = re.compile(r"""\bt\(\s*["']([A-Za-z0-9_.-]+)["']|data-i18n[a-z-]*["']?\s*[:=]\s*["']([A-Za-z0-9_.-]+)["']""")
PLURAL_IN_SCRIPT = re.compile(r"""\bplural\(\s*["']([A-Za-z0-9_.-]+)["']""")
LETTERS = re.compile(r"[A-Za-z]")


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", unescape(text)).strip()


class _PageTexts(HTMLParser):
    """Collects (key, English text) pairs and the texts with no key."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict]] = []
        self.keyed: list[tuple[str, str]] = []
        self.untranslated: list[str] = []
        self._text: dict[int, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        for name in TRANSLATED_ATTRIBUTES:
            value = a.get(name)
            if value and LETTERS.search(value):
                key = a.get(f"data-i18n-{name}")
                if key:
                    self.keyed.append((key, _norm(value)))
                else:
                    self.untranslated.append(f"<{tag} {name}={value!r}>")
        if tag in ("meta", "link", "input", "br", "img", "source", "track", "hr"):
            return
        self.stack.append((tag, a))
        self._text[len(self.stack)] = []

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            open_tag, attrs = self.stack.pop()
            text = _norm("".join(self._text.pop(len(self.stack) + 1, [])))
            if attrs.get("data-i18n"):
                self.keyed.append((attrs["data-i18n"], text))
            if open_tag == tag:
                return

    def handle_data(self, data: str) -> None:
        if not self.stack:
            return
        tag, attrs = self.stack[-1]
        if tag in ("script", "style") or any("translate" in a and a["translate"] == "no" for _, a in self.stack):
            return
        self._text[len(self.stack)].append(data)
        if LETTERS.search(data) and not attrs.get("data-i18n"):
            self.untranslated.append(f"<{tag}> {_norm(data)!r}")


def _texts(page: Path) -> _PageTexts:
    parser = _PageTexts()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_both_catalogues_have_the_same_keys_and_placeholders():
    en, zh = catalogue("en"), catalogue("zh-CN")
    assert sorted(set(en) ^ set(zh)) == []
    placeholder = re.compile(r"\{[a-z_][a-z0-9_]*\}")
    differing = [k for k in en if sorted(placeholder.findall(en[k])) != sorted(placeholder.findall(zh[k]))]
    assert differing == []
    assert [k for k in zh if zh[k] == en[k] and re.search("[a-z]", en[k]) and not k.startswith("language.")] == []


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_text_of_the_page_has_a_key_in_both_catalogues(page):
    found = _texts(page)
    assert found.untranslated == [], f"texts without data-i18n in {page.name}"
    en = catalogue("en")
    for lang in SUPPORTED:
        assert [k for k, _ in found.keyed if k not in catalogue(lang)] == [], lang
    # the page's English is the catalogue's: the key names the text the page shows
    assert [(k, text, en[k]) for k, text in found.keyed if text and en[k] != text] == []


def test_every_key_the_scripts_use_is_in_both_catalogues():
    sources = [script.read_text(encoding="utf-8") for script in SCRIPTS]
    used = {key for source in sources for m in KEY_IN_SCRIPT.finditer(source) for key in m.groups() if key}
    used |= {f"{key}.{form}" for source in sources for key in PLURAL_IN_SCRIPT.findall(source) for form in ("one", "other")}
    assert len(used) > 300
    used |= {f"language.{lang}" for lang in SUPPORTED}
    for lang in SUPPORTED:
        assert sorted(used - set(catalogue(lang))) == [], lang
