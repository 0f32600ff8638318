"""The one reader of request bodies for the JSON edges (paywall, interaction HTTP, replays,
webhooks): every failure is a ``Refusal`` answered in the ``{"error": ...}`` envelope.

* over the app's ``client_max_size`` -> 413 ``body_too_large`` (aiohttp's own answer is
  plain text);
* not JSON, not UTF-8, a number of more than 4300 digits (``ValueError``), arrays nested
  thousands deep (``RecursionError``), or not an object -> 400 ``bad_json``;
* JSON endpoints want ``Content-Type: application/json`` -> 415 otherwise.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from core.access import Refusal

__all__ = ["parse_json", "read_bytes", "read_form", "read_json"]


def _too_large(request: web.Request) -> Refusal:
    return Refusal(413, "body_too_large", f"the body is larger than {request.client_max_size} bytes")


async def read_bytes(request: web.Request) -> bytes:
    """The raw body, at most the app's ``client_max_size``."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(request) from None


def parse_json(raw: bytes) -> Any:
    """``json.loads`` that fails only with ``Refusal(400, "bad_json")``."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, int digits limit
        raise Refusal(400, "bad_json", "the body is not valid JSON") from None


async def read_json(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object."""
    if request.content_type != "application/json":
        raise Refusal(415, "unsupported_media_type", "send JSON with Content-Type: application/json")
    body = parse_json(await read_bytes(request))
    if not isinstance(body, dict):
        raise Refusal(400, "bad_json", "the body must be a JSON object")
    return body


async def read_form(request: web.Request) -> MultiDictProxy:
    """The body as an HTML form (``application/x-www-form-urlencoded`` or multipart)."""
    try:
        return await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(request) from None
    except ValueError:
        raise Refusal(400, "bad_form", "the body is not a valid form") from None
