"""Clips HTTP API: the creator cuts pieces of a replay; free teasers are public.

* ``POST /api/recordings/{recording}/clips`` ``{start_ms, end_ms, title?, teaser?}`` -- the
  room's creator (or an admin) cuts ``[start_ms, end_ms)`` of a ready replay (1 s to 5 min):
  ``201`` with the clip. Remuxed, with only the frames before the first keyframe
  re-encoded (``mediaserver.packaging.clips``).
* ``GET /api/clips[?room=][&teaser=1]`` -- newest first: free teasers for everyone, and the
  other clips of a room for those who own its replays (buyers, the creator, admins).
* ``GET /api/clips/{clip}``, ``PATCH`` ``{title?, teaser?}`` (creator), ``DELETE`` (creator).
* ``GET /clips/{clip}/index.m3u8`` and its segments -- checked on every request: a teaser
  is free, any other clip needs the replay (login cookie).

A clip's danmaku are served by ``interaction`` (``GET /api/clips/{clip}/danmaku``).
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import av
from aiohttp import web

from core.cpu import off_loop
from mediaserver.packaging.clips import Clip, ClipError, ClipLibrary
from mediaserver.packaging.files import PLAYLIST

from .accounts import UserView
from .catalog import RoomView
from core.access import Refusal
from .http import PAYWALL, current_user, optional_user
from .replay_http import RECORDINGS
from .request_body import read_json

__all__ = ["CLIPS", "MAX_CLIP_MS", "MIN_CLIP_MS", "clip_for_viewer", "setup_routes"]

CLIPS = web.AppKey("clips", ClipLibrary)
MIN_CLIP_MS = 1000
MAX_CLIP_MS = 5 * 60 * 1000
MAX_TITLE = 120
log = logging.getLogger("stagepass.clips")
_TYPES = {"index.m3u8": "application/vnd.apple.mpegurl", "head.ts": "video/mp2t", "body.ts": "video/mp2t"}


def _manages(user: Optional[UserView], room: Optional[RoomView]) -> bool:
    return user is not None and (user.role == "admin" or (room is not None and user.id == room.creator_id))


async def _may_watch(request: web.Request, clip: Clip, room: Optional[RoomView], user: Optional[UserView]) -> bool:
    if clip.teaser or _manages(user, room):
        return True
    return await request.app[PAYWALL].replays.owns(user, room)


async def clip_for_viewer(request: web.Request) -> tuple[Clip, Optional[RoomView]]:
    """The clip of ``{clip}`` if the visitor may watch it; 404 otherwise (a clip one may
    not watch is not shown to exist)."""
    clip = await off_loop(request.app[CLIPS].find, request.match_info["clip"])
    if clip is None:
        raise Refusal(404, "clip_not_found", "no such clip")
    room = await request.app[PAYWALL].catalog.get(clip.room)
    if not await _may_watch(request, clip, room, await optional_user(request)):
        raise Refusal(404, "clip_not_found", "no such clip")
    return clip, room


def _int_field(body: dict, key: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Refusal(400, "invalid_clip", f"{key}: a whole number of milliseconds, not negative")
    return value


def _options(body: dict[str, Any], current: Optional[dict] = None) -> dict:
    out: dict[str, Any] = {}
    if "title" in body or current is None:
        title = body.get("title", "")
        if not isinstance(title, str) or len(title.strip()) > MAX_TITLE:
            raise Refusal(400, "invalid_clip", f"title: text of at most {MAX_TITLE} characters")
        out["title"] = title.strip()
    if "teaser" in body or current is None:
        teaser = body.get("teaser", False)
        if not isinstance(teaser, bool):
            raise Refusal(400, "invalid_clip", "teaser: true (free for everyone) or false")
        out["teaser"] = teaser
    unknown = set(body) - {"title", "teaser", "start_ms", "end_ms"}
    if unknown:
        raise Refusal(400, "invalid_clip", f"unknown field {sorted(unknown)[0]!r}")
    return out


async def create_clip(request: web.Request) -> web.Response:
    user = await current_user(request)
    rec = await request.app[RECORDINGS].find(request.match_info["recording"])
    room = await request.app[PAYWALL].catalog.get(rec.room) if rec is not None else None
    if rec is None or not _manages(user, room):
        raise Refusal(404, "recording_not_found", "no such recording")
    body = await read_json(request)
    start, end = _int_field(body, "start_ms"), _int_field(body, "end_ms")
    options = _options(body)
    if not rec.ready:
        raise Refusal(409, "not_ready", f"the replay is {rec.status}; cut clips once it is ready")
    duration = rec.duration_ms or 0
    if end <= start or end - start < MIN_CLIP_MS or end - start > MAX_CLIP_MS:
        raise Refusal(400, "invalid_clip", f"a clip lasts {MIN_CLIP_MS // 1000} s to {MAX_CLIP_MS // 60000} min"
                                                " (end_ms after start_ms)")
    if end > duration:
        raise Refusal(400, "invalid_clip", f"end_ms is past the end of the replay ({duration} ms)")
    playlist = request.app[RECORDINGS].file(rec, PLAYLIST)
    if playlist is None:
        raise Refusal(409, "replay_not_local", "this replay's media are not on this node's disk")
    try:
        clip = await off_loop(request.app[CLIPS].create, rec.room, rec.id, start, end, options["title"],
                              options["teaser"], playlist)
    except (ClipError, av.FFmpegError) as exc:
        raise Refusal(409, "cannot_cut", f"this part of the replay cannot be cut: {exc}") from None
    log.info("clip %s of recording %s [%d, %d) ms by user %s (%d ms re-encoded)", clip.id, rec.id, start, end,
             user.id, clip.meta.get("reencoded_ms", 0))
    return web.json_response(clip.summary(), status=201)


async def list_clips(request: web.Request) -> web.Response:
    slug = request.query.get("room") or None
    teasers_only = request.query.get("teaser") in ("1", "true")
    user = await optional_user(request)
    catalog = request.app[PAYWALL].catalog
    rooms: dict[str, Optional[RoomView]] = {}
    out = []
    for clip in await off_loop(request.app[CLIPS].clips, slug):
        if teasers_only and not clip.teaser:
            continue
        if clip.room not in rooms:
            rooms[clip.room] = await catalog.get(clip.room)
        if await _may_watch(request, clip, rooms[clip.room], user):
            out.append({**clip.summary(), "room_title": rooms[clip.room].title if rooms[clip.room] else clip.room})
    return web.json_response({"clips": out})


async def get_clip(request: web.Request) -> web.Response:
    clip, room = await clip_for_viewer(request)
    user = await optional_user(request)
    return web.json_response({**clip.summary(), "room_title": room.title if room else clip.room,
                              "manage": _manages(user, room)})


async def _managed_clip(request: web.Request) -> tuple[Clip, UserView]:
    user = await current_user(request)
    clip = await off_loop(request.app[CLIPS].find, request.match_info["clip"])
    room = await request.app[PAYWALL].catalog.get(clip.room) if clip is not None else None
    if clip is None or not _manages(user, room):
        raise Refusal(404, "clip_not_found", "no such clip")
    return clip, user


async def edit_clip(request: web.Request) -> web.Response:
    clip, user = await _managed_clip(request)
    body = await read_json(request)
    if "start_ms" in body or "end_ms" in body:
        raise Refusal(400, "invalid_clip", "a clip's cut cannot change: cut a new clip")
    clip = await off_loop(request.app[CLIPS].update, clip, **_options(body, clip.meta))
    return web.json_response(clip.summary())


async def delete_clip(request: web.Request) -> web.Response:
    clip, user = await _managed_clip(request)
    await off_loop(request.app[CLIPS].delete, clip)
    log.info("clip %s of room %s deleted by user %s", clip.id, clip.room, user.id)
    return web.json_response({"deleted": clip.id})


async def clip_file(request: web.Request) -> web.StreamResponse:
    clip, _ = await clip_for_viewer(request)
    name = request.match_info["name"]
    path = request.app[CLIPS].file(clip, name)
    if path is None:
        raise Refusal(404, "file_not_found", "no such file")
    cache = "public, max-age=300" if clip.teaser else "private, no-store"
    return web.FileResponse(path, headers={"Content-Type": _TYPES[name], "Cache-Control": cache})


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/recordings/{recording}/clips", create_clip)
    r.add_get("/api/clips", list_clips)
    r.add_get("/api/clips/{clip}", get_clip)
    r.add_patch("/api/clips/{clip}", edit_clip)
    r.add_delete("/api/clips/{clip}", delete_clip)
    r.add_get("/clips/{clip}/{name}", clip_file)
