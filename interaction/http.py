"""HTTP reads of a room's interaction: danmaku exports (JSON or Bilibili XML), and for a
recording's replay the danmaku of a time window and the chapters (WebVTT)."""

from __future__ import annotations

import json

from aiohttp import web

from core.cpu import off_loop

from core.access import Refusal
from paywall.clips_http import clip_for_viewer
from paywall.http import PAYWALL, current_user
from paywall.replay_http import authorized_replay

from .chapters import chapters_of, to_webvtt
from .danmaku import DanmakuService, to_bilibili_xml
from .polls import PollService
from .questions import QuestionService

__all__ = ["setup_routes"]

DANMAKU = web.AppKey("danmaku", DanmakuService)
QUESTIONS = web.AppKey("questions", QuestionService)
POLLS = web.AppKey("polls", PollService)


def _int_arg(request: web.Request, name: str):
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise Refusal(400, "invalid_query", f"{name}: an integer (milliseconds)") from None
    if value < 0:
        raise Refusal(400, "invalid_query", f"{name}: not negative")
    return value


async def danmaku_export(request: web.Request) -> web.Response:
    """``GET /api/rooms/{room}/danmaku?broadcast=&from_ms=&to_ms=&format=json|xml``:
    for the creator, admins and anyone with a ticket or the replay (or a free room)."""
    paywall = request.app[PAYWALL]
    user = await current_user(request)
    room = await paywall.catalog.require(request.match_info["room"])
    if not (room.free or user.id == room.creator_id or user.role == "admin"
            or await paywall.orders.entitlements(user.id, room)):
        raise Refusal(403, "ticket_required", "the danmaku of a paid room are for its buyers")
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "xml"):
        raise Refusal(400, "invalid_query", "format: json or xml")
    from_ms, to_ms = _int_arg(request, "from_ms"), _int_arg(request, "to_ms")
    broadcast = request.query.get("broadcast")
    items = await request.app[DANMAKU].history(room.id, broadcast, from_ms=from_ms, to_ms=to_ms)
    # a whole class's danmaku can be tens of thousands: serialised off the event loop
    if fmt == "xml":
        return web.Response(text=await off_loop(to_bilibili_xml, items, chat_id=room.slug),
                            content_type="application/xml")
    body = await off_loop(json.dumps, {"room": room.slug, "broadcast": broadcast, "items": items})
    return web.Response(text=body, content_type="application/json")


MAX_WINDOW_MS = 10 * 60 * 1000


async def replay_danmaku(request: web.Request) -> web.Response:
    """``GET /api/recordings/{recording}/danmaku?from_ms=&to_ms=&token=``: the danmaku sent
    during ``[from_ms, to_ms)`` of the broadcast (at most 10 minutes; a preview token is
    limited to the preview), for the player to overlay at their ``t_ms``."""
    rec, grant = await authorized_replay(request)
    room = await request.app[PAYWALL].catalog.get(rec.room)
    from_ms = _int_arg(request, "from_ms") or 0
    to_ms = _int_arg(request, "to_ms")
    if to_ms is None:
        to_ms = from_ms + 60_000
    if to_ms <= from_ms:
        raise Refusal(400, "invalid_query", "to_ms must be greater than from_ms")
    if to_ms - from_ms > MAX_WINDOW_MS:
        raise Refusal(400, "invalid_query", f"a window spans at most {MAX_WINDOW_MS} ms")
    if grant.preview_ms is not None:
        to_ms = min(to_ms, grant.preview_ms)
    items = []
    if room is not None and to_ms > from_ms:
        items = await request.app[DANMAKU].history(room.id, rec.id, from_ms=from_ms, to_ms=to_ms)
    return web.json_response({"recording": rec.id, "from_ms": from_ms, "to_ms": to_ms, "items": items},
                             headers={"Cache-Control": "private, no-store"})


async def replay_chapters(request: web.Request) -> web.Response:
    """``GET /api/recordings/{recording}/chapters.vtt?token=`` (``?format=json`` for a list)."""
    rec, _ = await authorized_replay(request)
    room = await request.app[PAYWALL].catalog.get(rec.room)
    fmt = request.query.get("format", "vtt")
    if fmt not in ("vtt", "json"):
        raise Refusal(400, "invalid_query", "format: vtt or json")
    chapters: list[dict] = []
    if room is not None:
        chapters = chapters_of(await request.app[QUESTIONS].chapters(room.id, rec.id),
                               await request.app[POLLS].of_broadcast(room.id, rec.id))
    if fmt == "json":
        return web.json_response({"recording": rec.id, "chapters": chapters})
    return web.Response(text=to_webvtt(chapters, rec.duration_ms), content_type="text/vtt",
                        headers={"Cache-Control": "private, no-store"})


async def clip_danmaku(request: web.Request) -> web.Response:
    """``GET /api/clips/{clip}/danmaku``: the danmaku sent during the clip's stretch of its
    broadcast, with ``t_ms`` on the clip's own clock (0 = the clip's first frame)."""
    clip, room = await clip_for_viewer(request)
    start, end = clip.meta["start_ms"], clip.meta["end_ms"]
    items = []
    if room is not None:
        items = await request.app[DANMAKU].history(room.id, clip.meta["recording"], from_ms=start, to_ms=end)
    return web.json_response({"clip": clip.id, "items": [{**it, "t_ms": it["t_ms"] - start} for it in items]},
                             headers={"Cache-Control": "no-store"})


def setup_routes(app: web.Application, danmaku: DanmakuService, questions: QuestionService,
                 polls: PollService) -> None:
    app[DANMAKU], app[QUESTIONS], app[POLLS] = danmaku, questions, polls
    app.router.add_get("/api/rooms/{room}/danmaku", danmaku_export)
    app.router.add_get("/api/recordings/{recording}/danmaku", replay_danmaku)
    app.router.add_get("/api/recordings/{recording}/chapters.vtt", replay_chapters)
    app.router.add_get("/api/clips/{clip}/danmaku", clip_danmaku)
