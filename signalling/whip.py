"""WHIP (RFC 9725) and WHEP HTTP resources: thin handlers over ``mediaserver.live.room``.

``POST /whip/{room}`` publishes, ``POST /whep/{room}`` plays: ``application/sdp`` offer
in, ``201 Created`` with the answer, a ``Location`` for the session resource and an
``ETag``; ``DELETE`` on the session ends it. The server gathers its ICE candidates
before answering, so trickle ICE is not needed: ``PATCH`` answers 405 as RFC 9725
requires of servers without trickle support. Access is the app's one door
(``core.access_http.ACCESS``); a refusal, the door's or the offer's, is raised as
``core.access.Refusal`` and answered ``{"error": {"code", "message"}}`` with the status
listed in the README, leaving nothing behind. Domain errors of the room become refusals
in one table (``DOMAIN_REFUSALS``).
"""

from __future__ import annotations

import logging
from typing import Literal

from aiohttp import web

from core.access import Grant, Refusal, Target, bearer_token
from core.access_http import ACCESS, refusal_response
from core.settings import ROOM_NAME_RE, Settings
from mediaserver.live.errors import CodecMismatch, NegotiationFailed, RoomBusy
from mediaserver.live.room import RoomRegistry

from .admission import Admission
from .offer import parse_offer

__all__ = ["ADMISSION", "DOMAIN_REFUSALS", "ROOMS", "SETTINGS", "setup_routes"]

ROOMS = web.AppKey("rooms", RoomRegistry)
ADMISSION = web.AppKey("admission", Admission)
SETTINGS = web.AppKey("settings", Settings)

logger = logging.getLogger("stagepass.signalling")

Kind = Literal["whip", "whep"]
#: what a session resource answers (RFC 9110: a 405 lists them in ``Allow``)
SESSION_METHODS = "DELETE, OPTIONS"
_ACTION = {"whip": "publish", "whep": "view"}
_ROLE = {"whip": "publish", "whep": "play"}
#: the room's domain errors as refusals: (status, code); the message is the error's own
DOMAIN_REFUSALS: dict[type[Exception], tuple[int, str]] = {
    RoomBusy: (409, "room_busy"),
    CodecMismatch: (406, "no_common_codec"),
    NegotiationFailed: (400, "bad_offer"),
}


def _domain_refusal(exc: Exception) -> Refusal:
    status, code = next(v for kind, v in DOMAIN_REFUSALS.items() if isinstance(exc, kind))
    return Refusal(status, code, str(exc))


def _link_headers(settings: Settings) -> list[str]:
    return [f'<{url}>; rel="ice-server"' for url in settings.media.ice_servers]


async def _check_room(request: web.Request, kind: Kind) -> tuple[str, Grant]:
    room = request.match_info["room"]
    if not ROOM_NAME_RE.match(room):
        raise Refusal(404, "room_not_found", f"no room named {room!r}")
    return room, await request.app[ACCESS].authorize(bearer_token(request), _ACTION[kind], Target(room))


async def _read_offer(request: web.Request, kind: Kind):
    settings = request.app[SETTINGS]
    if request.content_type != "application/sdp":
        raise Refusal(
            415, "unsupported_media_type", "send the offer as Content-Type: application/sdp"
        )
    limit = settings.media.max_sdp_bytes
    if request.content_length is not None and request.content_length > limit:
        raise Refusal(413, "offer_too_large", f"the offer is larger than {limit} bytes")
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise Refusal(413, "offer_too_large", f"the offer is larger than {limit} bytes")
    return parse_offer(body, _ROLE[kind])


def _handler(kind: Kind):
    async def create_session(request: web.Request) -> web.Response:
        room_name, grant = await _check_room(request, kind)
        offer = await _read_offer(request, kind)
        room = request.app[ROOMS].open(room_name)
        try:
            if kind == "whip":
                session, answer = await room.publish(offer.sdp, offer.publish_plan())
            else:
                session, answer = await room.subscribe(offer.sdp, offer.kinds)
        except tuple(DOMAIN_REFUSALS) as exc:
            raise _domain_refusal(exc) from None
        try:
            await request.app[ADMISSION].admit(grant, session)
        except Exception:
            logger.exception("admitting session %s to room %s failed", session.id[:8], room_name)
            await session.close()
            raise Refusal(503, "unavailable", "could not take a seat for this ticket; try again") from None
        location = f"/{kind}/{room_name}/{session.id}"
        headers = {"Location": location, "ETag": f'"{session.id}"'}
        response = web.Response(
            status=201, text=answer, content_type="application/sdp", headers=headers
        )
        for link in _link_headers(request.app[SETTINGS]):
            response.headers.add("Link", link)
        return response

    async def delete_session(request: web.Request) -> web.Response:
        room_name = request.match_info["room"]
        room = request.app[ROOMS].get(room_name)
        session = room.session(request.match_info["session"]) if room else None
        if session is None or (kind == "whip") != (session is room.publisher):
            raise Refusal(404, "session_not_found", "no such session")
        if kind == "whip":
            await request.app[ACCESS].authorize(bearer_token(request), "publish", Target(room_name))
        await session.close()
        if kind == "whip":
            await room.end_broadcast()
        return web.Response(status=200)

    async def patch_session(request: web.Request) -> web.Response:
        response = refusal_response(
            Refusal(405, "trickle_not_supported", "this server does not take trickled ICE candidates")
        )
        response.headers["Allow"] = SESSION_METHODS
        return response

    return create_session, delete_session, patch_session


async def options(request: web.Request) -> web.Response:
    response = web.Response(status=204, headers={"Accept-Post": "application/sdp"})
    for link in _link_headers(request.app[SETTINGS]):
        response.headers.add("Link", link)
    return response


async def room_status(request: web.Request) -> web.Response:
    room = request.match_info["room"]
    if not await request.app[ACCESS].room_exists(room):
        raise Refusal(404, "room_not_found", f"no room named {room!r}")
    registry_room = request.app[ROOMS].get(room)
    if registry_room is None:
        return web.json_response({"room": room, "live": False, "phase": "idle", "viewers": 0})
    return web.json_response(registry_room.stats())


async def on_air(request: web.Request) -> web.Response:
    """``GET /api/live``: the rooms broadcasting on this node, with their viewer counts
    (takes no parameters; the catalog page joins it with ``/api/catalog``)."""
    if request.query:
        raise Refusal(400, "unexpected_parameter", "GET /api/live takes no query parameters")
    return web.json_response({"rooms": request.app[ROOMS].on_air()})


@web.middleware
async def cors(request: web.Request, handler) -> web.StreamResponse:
    """CORS for the WHIP/WHEP endpoints, so players on other origins can use them."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    if request.path.startswith(("/whip/", "/whep/")):
        origin = request.app[SETTINGS].server.cors_origin
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "POST, DELETE, PATCH, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, If-Match"
        response.headers["Access-Control-Expose-Headers"] = "Location, ETag, Link, Accept-Post"
    if isinstance(response, web.HTTPException):
        raise response
    return response


def setup_routes(app: web.Application) -> None:
    for kind in ("whip", "whep"):
        create, delete, patch = _handler(kind)  # type: ignore[arg-type]
        app.router.add_post(f"/{kind}/{{room}}", create)
        app.router.add_route("OPTIONS", f"/{kind}/{{room}}", options)
        app.router.add_delete(f"/{kind}/{{room}}/{{session}}", delete)
        app.router.add_patch(f"/{kind}/{{room}}/{{session}}", patch)
        app.router.add_route("OPTIONS", f"/{kind}/{{room}}/{{session}}", options)
    app.router.add_get("/api/rooms/{room}", room_status)
    app.router.add_get("/api/live", on_air)
    app.middlewares.append(cors)
