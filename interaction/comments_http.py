"""Comments HTTP API: the discussion under each replay and each room.

* ``GET  /api/rooms/{room}/comments[?recording=]`` -- the room's discussion, or a replay's:
  top-level comments newest first with their replies; everyone may read.
* ``POST /api/rooms/{room}/comments`` ``{text, recording?, parent?}`` -- logged-in users; a
  replay's discussion only for those who own the replay (buyers, the creator, admins).
* ``DELETE /api/comments/{id}`` -- its author or a moderator of the room.
* ``POST /api/comments/{id}/report`` ``{reason?}`` -- once per user; hidden at 3 reports.
* ``POST /api/comments/{id}/review`` ``{action: keep|delete}`` -- the room's moderators.

Errors are the JSON ``{"error": {code, message}}`` of the paywall API and change nothing.
"""

from __future__ import annotations

from typing import Optional

from aiohttp import web

from mediaserver.packaging.replays import RECORDING_ID_RE
from paywall.accounts import UserView
from paywall.catalog import RoomView
from core.access import Refusal
from paywall.http import PAYWALL, current_user, optional_user
from paywall.request_body import read_json

from .comments import CommentError, CommentService
from .models import Comment

__all__ = ["COMMENTS", "setup_routes"]


COMMENTS = web.AppKey("comments", CommentService)


def _service(request: web.Request) -> CommentService:
    return request.app[COMMENTS]


async def _is_moderator(request: web.Request, room: RoomView, user: Optional[UserView]) -> bool:
    if user is None:
        return False
    if user.role == "admin" or user.id == room.creator_id:
        return True
    return await _service(request).moderation.is_moderator(room.id, user.id)


def _recording(value: object) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or not RECORDING_ID_RE.match(value):
        raise Refusal(400, "invalid_comment", "recording: the id of one of the room's replays")
    return value


async def _refusing(coro):
    try:
        return await coro
    except CommentError as exc:
        raise Refusal(exc.status, exc.code, exc.message) from None


async def list_comments(request: web.Request) -> web.Response:
    room = await request.app[PAYWALL].catalog.require(request.match_info["room"])
    recording = _recording(request.query.get("recording"))
    user = await optional_user(request)
    moderator = await _is_moderator(request, room, user)
    items = await _service(request).thread(room.id, recording, user.id if user else None, moderator)
    return web.json_response({"room": room.slug, "recording": recording or None, "comments": items,
                              "moderator": moderator}, headers={"Cache-Control": "no-store"})


async def post_comment(request: web.Request) -> web.Response:
    user = await current_user(request)
    paywall = request.app[PAYWALL]
    room = await paywall.catalog.require(request.match_info["room"])
    body = await read_json(request)
    unknown = set(body) - {"text", "recording", "parent"}
    if unknown:
        raise Refusal(400, "invalid_comment", f"unknown field {sorted(unknown)[0]!r}")
    recording = _recording(body.get("recording"))
    if recording and not await paywall.replays.owns(user, room):
        raise Refusal(403, "replay_required", "the discussion of a replay is for those who have it")
    created = await _refusing(_service(request).post(room.id, room.slug, recording, user.id, body.get("text"),
                                                     body.get("parent")))
    return web.json_response(created, status=201)


async def _comment(request: web.Request) -> tuple[Comment, RoomView]:
    raw = request.match_info["comment"]
    comment = await _service(request).get(int(raw)) if raw.isdigit() and len(raw) < 10 else None
    room = await request.app[PAYWALL].catalog.by_id(comment.room_id) if comment is not None else None
    if comment is None or room is None:
        raise Refusal(404, "comment_not_found", "no such comment")
    return comment, room


async def delete_comment(request: web.Request) -> web.Response:
    user = await current_user(request)
    comment, room = await _comment(request)
    await _refusing(_service(request).delete(comment, user.id, await _is_moderator(request, room, user)))
    return web.json_response({"deleted": comment.id})


async def report_comment(request: web.Request) -> web.Response:
    user = await current_user(request)
    comment, _ = await _comment(request)
    body = await read_json(request)
    result = await _refusing(_service(request).report(comment, user.id, body.get("reason")))
    return web.json_response(result, status=201)


async def review_comment(request: web.Request) -> web.Response:
    user = await current_user(request)
    comment, room = await _comment(request)
    if not await _is_moderator(request, room, user):
        raise Refusal(403, "forbidden", "only the room's moderators review reported comments")
    body = await read_json(request)
    await _refusing(_service(request).review(comment, user.id, body.get("action")))
    return web.json_response({"reviewed": comment.id, "action": body.get("action")})


def setup_routes(app: web.Application, comments: CommentService) -> None:
    app[COMMENTS] = comments
    r = app.router
    r.add_get("/api/rooms/{room}/comments", list_comments)
    r.add_post("/api/rooms/{room}/comments", post_comment)
    r.add_delete("/api/comments/{comment}", delete_comment)
    r.add_post("/api/comments/{comment}/report", report_comment)
    r.add_post("/api/comments/{comment}/review", review_comment)
