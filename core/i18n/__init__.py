"""Languages of the pages and of the messages people read: English and Simplified Chinese.

One catalogue per language, ``core/i18n/<lang>.json``: flat keys (``room.buy_ticket``,
``error.<code>``) to text with ``{name}`` placeholders. The pages load theirs from
``/i18n/...`` (``web.i18n``) and translate the server's errors by their stable ``code``; the
server picks the language of an API error's message here, from the ``stagepass_lang``
cookie (the user's choice, set by the pages' switcher) or else ``Accept-Language``.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Optional

__all__ = ["DEFAULT", "LANG_COOKIE", "SUPPORTED", "catalogue", "error_message", "language_of",
           "negotiate", "translate"]

SUPPORTED: tuple[str, ...] = ("en", "zh-CN")
DEFAULT = "en"
#: the user's choice, written by the pages (web/static/i18n.js) and read by the server
LANG_COOKIE = "stagepass_lang"
_DIR = Path(__file__).parent
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


@lru_cache(maxsize=None)
def catalogue(lang: str) -> Mapping[str, str]:
    """The catalogue of ``lang`` (one of ``SUPPORTED``), read once."""
    if lang not in SUPPORTED:
        raise KeyError(lang)
    return json.loads((_DIR / f"{lang}.json").read_text(encoding="utf-8"))


def language_of(tag: str) -> Optional[str]:
    """The supported language of one BCP 47 tag: any Chinese is zh-CN (the only Chinese
    catalogue, simplified), any English is en; None for the rest."""
    primary = tag.strip().lower().split("-", 1)[0]
    return {"zh": "zh-CN", "en": "en"}.get(primary)


def negotiate(accept_language: Optional[str], cookie: Optional[str] = None) -> str:
    """The language to answer in: the cookie's if supported, else the best of
    ``Accept-Language`` (highest ``q``, first on ties), else ``DEFAULT``."""
    if cookie in SUPPORTED:
        return cookie  # type: ignore[return-value]
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate((accept_language or "")[:1000].split(",")):
        tag, _, params = item.partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        lang = language_of(tag) if tag.strip() else None
        if lang and q > 0:
            ranked.append((-q, position, lang))
    return min(ranked)[2] if ranked else DEFAULT


def translate(lang: str, key: str, default: Optional[str] = None, **params: object) -> str:
    """The text of ``key`` in ``lang`` with ``{name}`` filled from ``params``; ``default``
    (else English, else the key) when the catalogue lacks it."""
    text = catalogue(lang).get(key) if lang in SUPPORTED else None
    if text is None:
        text = default if default is not None else catalogue(DEFAULT).get(key, key)
    return _PLACEHOLDER.sub(lambda m: str(params.get(m.group(1), m.group(0))), text)


def error_message(lang: str, code: str, message: str) -> str:
    """An error's message for people reading ``lang``: the server's own (detailed, English)
    message in English, the catalogue's ``error.<code>`` otherwise."""
    if lang == DEFAULT:
        return message
    return translate(lang, f"error.{code}", default=message)
