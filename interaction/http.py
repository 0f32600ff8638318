"""HTTP exports of a room's interaction: danmaku as JSON or Bilibili XML."""

from __future__ import annotations

from aiohttp import web

from paywall.errors import PaywallError
from paywall.http import PAYWALL, api, current_user

from .danmaku import to_bilibili_xml

__all__ = ["setup_routes"]


def _int_arg(request: web.Request, name: str):
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise PaywallError(400, "invalid_query", f"{name}: an integer (milliseconds)") from None
    if value < 0:
        raise PaywallError(400, "invalid_query", f"{name}: not negative")
    return value


@api
async def danmaku_export(request: web.Request) -> web.Response:
    """``GET /api/rooms/{room}/danmaku?broadcast=&from_ms=&to_ms=&format=json|xml``:
    for the creator, admins and anyone with a ticket or the replay (or a free room)."""
    from .assembly import INTERACTION

    paywall = request.app[PAYWALL]
    user = await current_user(request)
    room = await paywall.catalog.require(request.match_info["room"])
    if not (room.free or user.id == room.creator_id or user.role == "admin"
            or await paywall.orders.entitlements(user.id, room)):
        raise PaywallError(403, "ticket_required", "the danmaku of a paid room are for its buyers")
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "xml"):
        raise PaywallError(400, "invalid_query", "format: json or xml")
    from_ms, to_ms = _int_arg(request, "from_ms"), _int_arg(request, "to_ms")
    broadcast = request.query.get("broadcast")
    items = await request.app[INTERACTION].danmaku.history(room.id, broadcast, from_ms=from_ms, to_ms=to_ms)
    if fmt == "xml":
        return web.Response(text=to_bilibili_xml(items, chat_id=room.slug), content_type="application/xml")
    return web.json_response({"room": room.slug, "broadcast": broadcast, "items": items})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/rooms/{room}/danmaku", danmaku_export)
