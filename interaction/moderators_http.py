"""The room's moderators from the studio, over HTTP (the live ``mod:appoint`` event does the
same from a connected creator):

* ``GET /api/rooms/{room}/moderators`` -- ``{"moderators": [{user_id, display_name}]}``;
* ``POST /api/rooms/{room}/moderators`` ``{email}`` or ``{user_id}`` -- appoint;
* ``DELETE /api/rooms/{room}/moderators/{user}`` -- dismiss.

Only the room's creator (or an admin). Appointments take effect at once on live sockets.
"""

from __future__ import annotations

from aiohttp import web

from core.access import Refusal
from paywall.accounts import UserView
from paywall.catalog import RoomView
from paywall.http import PAYWALL, current_user, path_number
from paywall.request_body import read_json

from .moderation import Moderation

__all__ = ["MODERATION", "setup_routes"]

MODERATION = web.AppKey("moderation", Moderation)


async def _room_of_creator(request: web.Request) -> tuple[UserView, RoomView]:
    user = await current_user(request)
    room = await request.app[PAYWALL].catalog.require(request.match_info["room"])
    if user.id != room.creator_id and user.role != "admin":
        raise Refusal(403, "not_your_room", "only the room's creator appoints moderators")
    return user, room


async def _listing(request: web.Request, room: RoomView) -> web.Response:
    accounts = request.app[PAYWALL].accounts
    people = []
    for user_id in await request.app[MODERATION].moderators(room.id):
        person = await accounts.get(user_id)
        if person is not None:
            people.append({"user_id": person.id, "display_name": person.display_name})
    return web.json_response({"moderators": people})


async def list_moderators(request: web.Request) -> web.Response:
    _, room = await _room_of_creator(request)
    return await _listing(request, room)


async def appoint(request: web.Request) -> web.Response:
    user, room = await _room_of_creator(request)
    body = await read_json(request)
    accounts = request.app[PAYWALL].accounts
    if set(body) == {"email"} and isinstance(body["email"], str) and 3 <= len(body["email"]) <= 254:
        target = await accounts.by_email(body["email"])
    elif (set(body) == {"user_id"} and isinstance(body["user_id"], int) and not isinstance(body["user_id"], bool)
          and 1 <= body["user_id"] < 2**31):
        target = await accounts.get(body["user_id"])
    else:
        raise Refusal(400, "invalid_payload", "send {email} or {user_id} of the person to appoint")
    if target is None:
        raise Refusal(404, "user_not_found", "no account with that email or id")
    if target.id == room.creator_id:
        raise Refusal(409, "is_creator", "the room's creator moderates it already")
    await request.app[MODERATION].set_moderator(room.id, room.slug, user.id, target.id, True)
    return await _listing(request, room)


async def dismiss(request: web.Request) -> web.Response:
    user, room = await _room_of_creator(request)
    target = path_number(request, "user", "user_not_found")
    if target not in await request.app[MODERATION].moderators(room.id):
        raise Refusal(404, "not_a_moderator", f"user {target} is not a moderator of this room")
    await request.app[MODERATION].set_moderator(room.id, room.slug, user.id, target, False)
    return await _listing(request, room)


def setup_routes(app: web.Application, moderation: Moderation) -> None:
    app[MODERATION] = moderation
    r = app.router
    r.add_get("/api/rooms/{room}/moderators", list_moderators)
    r.add_post("/api/rooms/{room}/moderators", appoint)
    r.add_delete("/api/rooms/{room}/moderators/{user}", dismiss)
