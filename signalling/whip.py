"""WHIP (RFC 9725) and WHEP HTTP resources: thin handlers over ``mediaserver.live.room``.

``POST /whip/{room}`` publishes, ``POST /whep/{room}`` plays: ``application/sdp`` offer
in, ``201 Created`` with the answer, a ``Location`` for the session resource and an
``ETag``; ``DELETE`` on the session ends it. The server gathers its ICE candidates
before answering (it never trickles its own); a client may send its offer early and
``PATCH`` the session with the candidates it gathers later (``trickle.py``). Access is
the app's one door (``core.access_http.ACCESS``); a refusal, the door's, the offer's or
the fragment's, is raised as ``core.access.Refusal`` and answered ``{"error": {"code",
"message"}}`` with the status listed in the README, leaving nothing behind. Domain errors
of the room become refusals in one table (``DOMAIN_REFUSALS``).
"""

from __future__ import annotations

import logging
from typing import Literal

from aiohttp import web

from core.access import Grant, Refusal, Target, bearer_token
from core.access_http import ACCESS
from core.behaviour import NO_EVENTS, BehaviourSink
from core.settings import ROOM_NAME_RE, Settings
from mediaserver.live.errors import CodecMismatch, NegotiationFailed, RoomBusy
from mediaserver.live.peer_session import PeerSession
from mediaserver.live.room import Room, RoomRegistry
from mediaserver.workers.channel import WorkerGone

from .admission import Admission
from .edges import Edges, PullFailed
from .offer import parse_offer
from .trickle import CONTENT_TYPE as TRICKLE_CONTENT_TYPE
from .trickle import check_if_match, parse_fragment

__all__ = ["ADMISSION", "BEHAVIOUR", "EDGES", "DOMAIN_REFUSALS", "ROOMS", "SETTINGS", "setup_routes"]

ROOMS = web.AppKey("rooms", RoomRegistry)
ADMISSION = web.AppKey("admission", Admission)
SETTINGS = web.AppKey("settings", Settings)
#: where viewers' joins and leaves (and free previews) are reported; absent: nowhere
BEHAVIOUR = web.AppKey("behaviour", BehaviourSink)
#: the other nodes sharing this node's rooms; absent: a single node
EDGES = web.AppKey("edges", Edges)

logger = logging.getLogger("stagepass.signalling")

Kind = Literal["whip", "whep"]
_ACTION = {"whip": "publish", "whep": "view"}
_ROLE = {"whip": "publish", "whep": "play"}
#: the room's domain errors as refusals: (status, code); the message is the error's own
DOMAIN_REFUSALS: dict[type[Exception], tuple[int, str]] = {
    RoomBusy: (409, "room_busy"),
    CodecMismatch: (406, "no_common_codec"),
    NegotiationFailed: (400, "bad_offer"),
    WorkerGone: (503, "unavailable"),  # the media worker died while answering (--workers N): try again
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


async def _read_limited(request: web.Request, code: str, what: str) -> bytes:
    """The body, refused with 413 ``code`` above ``MAX_SDP_BYTES``."""
    limit = request.app[SETTINGS].media.max_sdp_bytes
    if request.content_length is not None and request.content_length > limit:
        raise Refusal(413, code, f"the {what} is larger than {limit} bytes")
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise Refusal(413, code, f"the {what} is larger than {limit} bytes")
    return body


def _etag(session: PeerSession) -> str:
    return f'"{session.id}"'


async def _read_offer(request: web.Request, kind: Kind):
    if request.content_type != "application/sdp":
        raise Refusal(
            415, "unsupported_media_type", "send the offer as Content-Type: application/sdp"
        )
    body = await _read_limited(request, "offer_too_large", "offer")
    return parse_offer(body, _ROLE[kind])


def _handler(kind: Kind):
    async def create_session(request: web.Request) -> web.Response:
        room_name, grant = await _check_room(request, kind)
        offer = await _read_offer(request, kind)
        edges = request.app.get(EDGES)
        if kind == "whip" and edges is not None:
            await _refuse_if_live_elsewhere(edges, room_name)
        room = request.app[ROOMS].open(room_name)
        try:
            if kind == "whip":
                session, answer = await room.publish(offer.sdp, offer.publish_plan())
            else:
                if edges is not None and not grant.relay:
                    await _pull(edges, room)
                session, answer = await room.subscribe(offer.sdp, offer.kinds)
        except tuple(DOMAIN_REFUSALS) as exc:
            raise _domain_refusal(exc) from None
        try:
            await request.app[ADMISSION].admit(grant, session)
        except Exception:
            logger.exception("admitting session %s to room %s failed", session.id[:8], room_name)
            await session.close()
            raise Refusal(503, "unavailable", "could not take a seat for this ticket; try again") from None
        if kind == "whip" and edges is not None:
            await _claim(edges, room_name, session)
        if grant.relay:
            session.relay = True  # type: ignore[attr-defined]
        elif kind == "whep":
            _report_viewer(request.app.get(BEHAVIOUR, NO_EVENTS), room, session, grant)
            if edges is not None:
                edges.keep(room)
        location = f"/{kind}/{room_name}/{session.id}"
        headers = {"Location": location, "ETag": _etag(session)}
        response = web.Response(
            status=201, text=answer, content_type="application/sdp", headers=headers
        )
        for link in _link_headers(request.app[SETTINGS]):
            response.headers.add("Link", link)
        return response

    async def _own_session(request: web.Request) -> tuple[Room, PeerSession]:
        """The session named by the URL, checked as its creator: ``(room, session)``."""
        room_name = request.match_info["room"]
        room = request.app[ROOMS].get(room_name)
        session = room.session(request.match_info["session"]) if room else None
        if session is None or (kind == "whip") != (session is room.publisher):
            raise Refusal(404, "session_not_found", "no such session")
        if kind == "whip":
            await request.app[ACCESS].authorize(bearer_token(request), "publish", Target(room_name))
        return room, session

    async def delete_session(request: web.Request) -> web.Response:
        room, session = await _own_session(request)
        await session.close()
        if kind == "whip":
            await room.end_broadcast()
        return web.Response(status=200)

    async def get_session(request: web.Request) -> web.Response:
        """A viewer's session (WHEP only): which rendition it plays (``full``, ``low`` for
        the room's low rendition on a weak network, ``audio`` only), for the player to show.
        The session URL is the credential, as for DELETE."""
        room = request.app[ROOMS].get(request.match_info["room"])
        session = room.session(request.match_info["session"]) if room else None
        if kind == "whip" or session is None or session is room.publisher:
            raise Refusal(404, "session_not_found", "no such session")
        return web.json_response({"session": session.id, "rendition": getattr(session, "rendition", "full")},
                                 headers={"Cache-Control": "no-store"})

    async def patch_session(request: web.Request) -> web.Response:
        """Trickle ICE (RFC 9725 section 4.3.1): candidates the client gathered after its
        offer, and its end-of-candidates. ``204`` without an ETag; ICE restarts are 422."""
        _, session = await _own_session(request)
        if request.content_type != TRICKLE_CONTENT_TYPE:
            raise Refusal(415, "unsupported_media_type", f"send candidates as Content-Type: {TRICKLE_CONTENT_TYPE}")
        body = await _read_limited(request, "fragment_too_large", "fragment")
        check_if_match(request.headers.get("If-Match"), _etag(session))
        ice = session.remote_ice
        fragment = parse_fragment(body, ice.ufrag, ice.pwd, list(ice.mids))
        session.trickle(fragment.candidates, fragment.end)
        return web.Response(status=204)

    return create_session, delete_session, patch_session, get_session


async def _refuse_if_live_elsewhere(edges: Edges, room: str) -> None:
    """409 while another live node originates ``room`` (its publisher is there)."""
    origin = await _origin_elsewhere(edges, room)
    if origin is not None:
        raise Refusal(409, "live_elsewhere",
                      f"room {room!r} is live on node {origin.id} ({origin.info.get('url', '?')}); publish there")


async def _claim(edges: Edges, room: str, session: PeerSession) -> None:
    """Become ``room``'s origin now that its publisher is accepted; the publisher is ended
    with 409 if another node claimed it first, 503 if the node registry does not answer."""
    try:
        claimed = await edges.claim(room)
    except Exception as exc:
        await session.close()
        raise _registry_down(room, exc) from None
    if not claimed:
        await session.close()
        raise Refusal(409, "live_elsewhere", f"room {room!r} went live on another node first")


async def _origin_elsewhere(edges: Edges, room: str):
    """The node originating ``room`` if not this one; 503 while the shared store (the node
    registry) does not answer, as for a seat that cannot be taken."""
    try:
        return await edges.origin_elsewhere(room)
    except Exception as exc:
        raise _registry_down(room, exc) from None


async def _pull(edges: Edges, room: Room) -> None:
    """Pull the room from its origin before the viewer joins (so its first keyframe is
    on the way); a failed pull is logged and the viewer waits, as for a room not yet live."""
    try:
        await edges.ensure_pull(room)
    except (PullFailed, NegotiationFailed, WorkerGone) as exc:
        logger.warning("room %s: pulling from the origin failed: %s", room.name, exc)
    except Exception as exc:  # the node registry (the shared store) does not answer
        raise _registry_down(room.name, exc) from None


def _registry_down(room: str, exc: Exception) -> Refusal:
    """What WHIP and WHEP answer while the node registry does not: 503, as for a seat that
    cannot be taken; the cause goes to the log."""
    logger.warning("room %s: the node registry does not answer (%s: %s)", room, type(exc).__name__, exc)
    return Refusal(503, "unavailable", "the cluster's shared store does not answer; try again")


def _report_viewer(events: BehaviourSink, room, session, grant: Grant) -> None:
    """``live_join`` now and ``live_leave`` when the session ends, on the broadcast's media
    clock; a free preview also starts and ends (``preview_start``/``preview_end``)."""
    preview = grant.ends_in is not None
    broadcast = room.broadcast  # a viewer who stays after the end leaves on the same clock

    def report(kind: str) -> None:
        events.record(kind, user_id=grant.user_id, room=room.name, broadcast=broadcast.id if broadcast else None,
                      t_ms=broadcast.t_ms() if broadcast else None, data={"session": session.id[:16]})

    report("live_join")
    if preview:
        report("preview_start")

    async def left() -> None:
        report("live_leave")
        if preview:
            report("preview_end")

    session.on_close(left)


async def options(request: web.Request) -> web.Response:
    response = web.Response(status=204, headers={"Accept-Post": "application/sdp"})
    if "session" in request.match_info:  # a session resource takes trickled candidates
        response.headers["Accept-Patch"] = TRICKLE_CONTENT_TYPE
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
    """``GET /api/live``: the rooms broadcasting (on every node of a cluster), with their viewer counts
    (takes no parameters; the catalog page joins it with ``/api/catalog``)."""
    if request.query:
        raise Refusal(400, "unexpected_parameter", "GET /api/live takes no query parameters")
    edges = request.app.get(EDGES)
    return web.json_response({"rooms": await edges.live() if edges is not None else request.app[ROOMS].on_air()})


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
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, PATCH, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, If-Match"
        response.headers["Access-Control-Expose-Headers"] = "Location, ETag, Link, Accept-Post, Accept-Patch"
    if isinstance(response, web.HTTPException):
        raise response
    return response


def setup_routes(app: web.Application) -> None:
    for kind in ("whip", "whep"):
        create, delete, patch, get = _handler(kind)  # type: ignore[arg-type]
        app.router.add_post(f"/{kind}/{{room}}", create)
        app.router.add_route("OPTIONS", f"/{kind}/{{room}}", options)
        app.router.add_delete(f"/{kind}/{{room}}/{{session}}", delete)
        app.router.add_patch(f"/{kind}/{{room}}/{{session}}", patch)
        if kind == "whep":
            app.router.add_get(f"/{kind}/{{room}}/{{session}}", get)
        app.router.add_route("OPTIONS", f"/{kind}/{{room}}/{{session}}", options)
    app.router.add_get("/api/rooms/{room}", room_status)
    app.router.add_get("/api/live", on_air)
    app.middlewares.append(cors)
