"""Insight HTTP API (thin: ``insight.service.Insight`` does the work).

* ``POST /api/events`` -- what a page reports: ``{"kind": "page_visit", "page":
  "catalog"|"room"|"replay", "room"?}`` or ``{"kind": "replay_progress", "room",
  "recording", "t_ms"}`` (the replay page's heartbeat every ~10 s); ``204``.
* ``GET /api/me/replay-position/{recording}`` -- ``{"t_ms": ...}`` where this viewer left
  the replay (null: never watched), so the page resumes there.

Creators (their own rooms; admins any), ``404 room_not_found`` otherwise:

* ``GET /api/creator/insight/rooms/{room}`` -- funnel, revenue and ROI, sessions.
* ``GET /api/creator/insight/rooms/{room}/sessions/{session}`` -- retention (live, replay)
  with drop-offs, engagement, chapters (danmaku bursts).
* ``GET|POST /api/creator/insight/rooms/{room}/costs`` -- the room's costs
  ``{category: production|promotion|other, amount, note}`` (POST: ``201``).
* ``GET /api/creator/insight/rooms/{room}/export/{report}.csv`` -- ``funnel``, ``revenue``,
  ``retention``, ``events``, ``danmaku``; de-identified (``insight.export``).
* ``GET /api/creator/insight/at-risk`` -- buyers likely to churn, with the reason.
* ``POST /api/creator/insight/at-risk/{user}/coupon`` ``{room, percent}`` -- a single-use
  coupon offered to that buyer (``201``); they see it in ``GET /api/me/offers``.

A person's data (logged in):

* ``GET /api/me/data`` -- everything the server holds about them, as a JSON download.
* ``DELETE /api/me`` ``{password}`` -- delete the account (``insight.privacy``): ``204``.

Recommendations (anyone; a visitor by their visitor cookie):

* ``GET /api/recommendations/for-you`` and ``GET /api/recommendations/also-bought/{room}``
  -- ``{"rooms": [{slug, title, currency, ticket_price}]}``, never one the viewer owns.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from aiohttp import web

from paywall.csrf import is_cross_site
from core.access import Refusal
from paywall.http import PAYWALL, SESSION_COOKIE, current_user, optional_user, read_json

from .service import Insight
from .suggestions import visited_rooms
from .visitors import visitor_id

__all__ = ["INSIGHT", "setup_routes"]

INSIGHT = web.AppKey("insight", Insight)
PAGES = ("catalog", "room", "replay")
RECORDING_RE = re.compile(r"^[0-9a-f]{1,32}$")
MAX_POSITION_MS = 48 * 3600 * 1000
_FIELDS = {"page_visit": {"kind", "page", "room"}, "replay_progress": {"kind", "room", "recording", "t_ms"}}


def _room_slug(body: dict, required: bool) -> Optional[str]:
    room = body.get("room")
    if room is None and not required:
        return None
    if not isinstance(room, str) or not 1 <= len(room) <= 64:
        raise Refusal(400, "invalid_room", "room: the room's slug")
    return room


def _recording(value: Any) -> str:
    if not isinstance(value, str) or not RECORDING_RE.match(value):
        raise Refusal(400, "invalid_recording", "recording: a recording id (1-32 lower-case hex digits)")
    return value


async def post_event(request: web.Request) -> web.Response:
    paywall = request.app[PAYWALL]
    if is_cross_site(request, paywall.settings.server.public_url):
        raise Refusal(403, "cross_site_request", "this request comes from another site; use the Stagepass pages")
    body = await read_json(request)
    kind = body.get("kind")
    if kind not in _FIELDS:
        raise Refusal(400, "invalid_kind", f"kind: one of {', '.join(_FIELDS)}")
    extra = set(body) - _FIELDS[kind]
    if extra:
        raise Refusal(400, "unexpected_field", f"{kind} takes no {', '.join(sorted(extra))}")
    fields: dict[str, Any] = {}
    if kind == "page_visit":
        page = body.get("page")
        if page not in PAGES:
            raise Refusal(400, "invalid_page", f"page: one of {', '.join(PAGES)}")
        slug = _room_slug(body, required=page != "catalog")
        fields["data"] = {"page": page}
    else:
        slug = _room_slug(body, required=True)
        t_ms = body.get("t_ms")
        if not isinstance(t_ms, int) or isinstance(t_ms, bool) or not 0 <= t_ms <= MAX_POSITION_MS:
            raise Refusal(400, "invalid_position", f"t_ms: the position in milliseconds, 0 to {MAX_POSITION_MS}")
        fields.update(broadcast=_recording(body.get("recording")), t_ms=t_ms)
    room = await paywall.catalog.get(slug) if slug else None
    if slug and room is None:
        raise Refusal(404, "room_not_found", f"no room {slug!r}")
    user = await optional_user(request)
    request.app[INSIGHT].events.record(kind, user_id=user.id if user else None, visitor=visitor_id(request),
                                       room_id=room.id if room else None, **fields)
    return web.Response(status=204)


async def replay_position(request: web.Request) -> web.Response:
    recording = _recording(request.match_info["recording"])
    user = await optional_user(request)
    t_ms = await request.app[INSIGHT].events.replay_position(recording, user.id if user else None,
                                                             visitor_id(request))
    return web.json_response({"recording": recording, "t_ms": t_ms})


async def room_insight(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response(await request.app[INSIGHT].reports.room(user, request.match_info["room"]))


async def session_insight(request: web.Request) -> web.Response:
    user = await current_user(request)
    session = _recording(request.match_info["session"])
    return web.json_response(await request.app[INSIGHT].reports.session(user, request.match_info["room"], session))


async def room_costs(request: web.Request) -> web.Response:
    user = await current_user(request)
    reports = request.app[INSIGHT].reports
    if request.method == "POST":
        cost = await reports.add_cost(user, request.match_info["room"], await read_json(request))
        return web.json_response({"cost": cost}, status=201)
    room = await reports.room_of(user, request.match_info["room"])
    return web.json_response({"costs": await reports.costs(room)})


async def export_csv(request: web.Request) -> web.Response:
    user = await current_user(request)
    room, report = request.match_info["room"], request.match_info["report"]
    text = await request.app[INSIGHT].exports.export(user, room, report)
    return web.Response(text=text, content_type="text/csv", charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="{room}-{report}.csv"', "Cache-Control": "private, no-store"})


def _limit(request: web.Request, default: int) -> int:
    raw = request.query.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= 50:
        raise Refusal(400, "invalid_limit", "limit: 1 to 50")
    return int(raw)


async def for_you(request: web.Request) -> web.Response:
    limit = _limit(request, 10)
    insight = request.app[INSIGHT]
    user = await optional_user(request)
    visited = await visited_rooms(insight.db, visitor_id(request))
    rooms = await insight.suggestions.for_user(user.id if user else None, visited, limit)
    return web.json_response({"rooms": rooms})


async def also_bought(request: web.Request) -> web.Response:
    limit = _limit(request, 6)
    insight = request.app[INSIGHT]
    room = await request.app[PAYWALL].catalog.require(request.match_info["room"])
    user = await optional_user(request)
    return web.json_response({"rooms": await insight.suggestions.also_bought(room.id, user.id if user else None, limit)})


async def at_risk(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response({"buyers": await request.app[INSIGHT].at_risk.buyers(user)})


async def offer_coupon(request: web.Request) -> web.Response:
    user = await current_user(request)
    raw = request.match_info["user"]
    if not raw.isdigit() or len(raw) > 12:
        raise Refusal(400, "invalid_user", "the buyer's user id")
    offer = await request.app[INSIGHT].at_risk.send_coupon(user, int(raw), await read_json(request))
    return web.json_response({"offer": offer}, status=201)


async def my_offers(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response({"offers": await request.app[INSIGHT].at_risk.offers(user)})


async def my_data(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await request.app[INSIGHT].privacy.export(user)
    return web.json_response(body, headers={"Content-Disposition": 'attachment; filename="stagepass-my-data.json"',
                                            "Cache-Control": "private, no-store"})


async def delete_me(request: web.Request) -> web.Response:
    user = await current_user(request)
    await request.app[INSIGHT].privacy.delete_account(user, (await read_json(request)).get("password"))
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/events", post_event)
    r.add_get("/api/me/replay-position/{recording}", replay_position)
    r.add_get("/api/creator/insight/rooms/{room}", room_insight)
    r.add_get("/api/creator/insight/rooms/{room}/sessions/{session}", session_insight)
    r.add_get("/api/creator/insight/rooms/{room}/costs", room_costs)
    r.add_post("/api/creator/insight/rooms/{room}/costs", room_costs)
    r.add_get("/api/creator/insight/rooms/{room}/export/{report}.csv", export_csv)
    r.add_get("/api/creator/insight/at-risk", at_risk)
    r.add_post("/api/creator/insight/at-risk/{user}/coupon", offer_coupon)
    r.add_get("/api/me/offers", my_offers)
    r.add_get("/api/me/data", my_data)
    r.add_delete("/api/me", delete_me)
    r.add_get("/api/recommendations/for-you", for_you)
    r.add_get("/api/recommendations/also-bought/{room}", also_bought)
