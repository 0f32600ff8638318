"""Paywall HTTP API: thin handlers over ``paywall.service.Paywall``.

Every handler validates its input and refuses with ``core.access.Refusal`` (answered
``{"error": {"code", "message"}}`` with its precise status by the app's
``refusal_middleware``), changing nothing. Logged-in users are recognised by the
``stagepass_session`` cookie (pages) or ``Authorization: Bearer <login token>`` (API).
"""

from __future__ import annotations

import html
import logging
from functools import partial
from typing import Any, Optional
from urllib.parse import quote

from aiohttp import web

from core.access import Refusal, bearer_token
from core.access_http import request_language
from core.i18n import translate

from .accounts import UserView
from .clients import client_address
from .csrf import cross_site_guard
from .orders import OrderView
from .ledger import Ledger
from .request_body import read_bytes, read_form, read_json
from .service import Paywall
from .watermark import watermark_for

__all__ = ["PAYWALL", "SESSION_COOKIE", "base_url", "current_user", "dev_checkout_html", "optional_user", "path_number", "read_json", "return_path_for", "setup_routes"]

PAYWALL = web.AppKey("paywall", Paywall)
SESSION_COOKIE = "stagepass_session"
log = logging.getLogger("stagepass.paywall")

def login_token(request: web.Request) -> Optional[str]:
    return bearer_token(request) or request.cookies.get(SESSION_COOKIE)


async def optional_user(request: web.Request) -> Optional[UserView]:
    """The logged-in user, or None for a visitor."""
    token = login_token(request)
    return await request.app[PAYWALL].accounts.user_for_token(token) if token else None


async def current_user(request: web.Request) -> UserView:
    user = await optional_user(request)
    if user is None:
        raise Refusal(401, "login_required", "log in first")
    return user


def _with_session(response: web.Response, request: web.Request, token: str) -> web.Response:
    secure = request.secure or base_url(request).startswith("https://")
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Lax", secure=secure,
                        max_age=14 * 86400, path="/")
    return response


def path_number(request: web.Request, name: str, code: str) -> int:
    """The numeric id in the path's ``{name}``; ``404 code`` for anything else."""
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 12:
        raise Refusal(404, code, f"no {name} {raw!r}")
    return int(raw)


def _str(body: dict, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise Refusal(400, "missing_field", f"{key} is required (a string)")
    return value


def _client(request: web.Request) -> str:
    """The client's address for per-client limits (``X-Forwarded-For`` of trusted proxies)."""
    return client_address(request, request.app[PAYWALL].settings.server.trusted_proxies)


def base_url(request: web.Request) -> str:
    """Where users reach us: ``STAGEPASS_PUBLIC_URL`` (behind a proxy), else this request's."""
    return request.app[PAYWALL].settings.server.public_url or f"{request.scheme}://{request.host}"


# ---------------------------------------------------------------------- accounts
async def sign_up(request: web.Request) -> web.Response:
    body = await read_json(request)
    user, token = await request.app[PAYWALL].accounts.sign_up(
        _str(body, "email"), _str(body, "password"), body.get("display_name") or _str(body, "email").split("@")[0],
        body.get("role", "viewer"), client=_client(request),
    )
    log.info("user %d signed up as %s", user.id, user.role)
    return _with_session(web.json_response({"user": user.as_dict(), "token": token}, status=201), request, token)


async def log_in(request: web.Request) -> web.Response:
    body = await read_json(request)
    client = _client(request)
    user, token = await request.app[PAYWALL].accounts.log_in(_str(body, "email"), _str(body, "password"), client)
    return _with_session(web.json_response({"user": user.as_dict(), "token": token}), request, token)


async def log_out(request: web.Request) -> web.Response:
    token = login_token(request)
    if token:
        await request.app[PAYWALL].accounts.log_out(token)
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    return web.json_response({"user": (await current_user(request)).as_dict()})


async def my_entitlements(request: web.Request) -> web.Response:
    """``{"entitlements": {room_slug: ["replay", "ticket"]}}`` of the logged-in user."""
    user = await current_user(request)
    if request.query:
        raise Refusal(400, "unexpected_parameter", "GET /api/me/entitlements takes no query parameters")
    return web.json_response({"entitlements": await request.app[PAYWALL].orders.owned(user.id)})


# ---------------------------------------------------------------------- rooms
async def catalog(request: web.Request) -> web.Response:
    """Every room, or with ``?q=`` the rooms matching it, best first (full-text search)."""
    query = request.query.get("q", "").strip()
    rooms = await (request.app[PAYWALL].catalog.search(query) if query else request.app[PAYWALL].catalog.list())
    return web.json_response({"rooms": [r.as_dict() for r in rooms]})


async def catalog_room(request: web.Request) -> web.Response:
    paywall = request.app[PAYWALL]
    room = await paywall.catalog.require(request.match_info["room"])
    body: dict[str, Any] = {"room": room.as_dict(), "test_mode": paywall.provider.name == "dev"}
    user = await optional_user(request)
    if user is not None:
        body["owned"] = sorted(await paywall.orders.entitlements(user.id, room))
    body["watermark"] = watermark_for(user, room)
    return web.json_response(body)


async def create_room(request: web.Request) -> web.Response:
    user = await current_user(request)
    paywall = request.app[PAYWALL]
    room, key = await paywall.catalog.create_room(user, await read_json(request),
                                                  listing=await paywall.trust.initial_listing(user))
    log.info("user %d created room %s", user.id, room.slug)
    await request.app[PAYWALL].notifications.room_scheduled(room)
    return web.json_response({"room": room.as_dict(), "stream_key": key}, status=201)


async def edit_room(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await read_json(request)
    room = await request.app[PAYWALL].catalog.edit_room(user, request.match_info["room"], body)
    if "starts_at" in body:
        await request.app[PAYWALL].notifications.room_scheduled(room)
    return web.json_response({"room": room.as_dict()})


async def stream_key(request: web.Request) -> web.Response:
    user = await current_user(request)
    catalog_ = request.app[PAYWALL].catalog
    slug = request.match_info["room"]
    key = await (catalog_.rotate_stream_key(user, slug) if request.method == "POST" else catalog_.stream_key(user, slug))
    return web.json_response({"stream_key": key, "whip_url": f"{base_url(request)}/whip/{slug}"})


async def add_coupon(request: web.Request) -> web.Response:
    user = await current_user(request)
    coupon = await request.app[PAYWALL].catalog.add_coupon(user, request.match_info["room"], await read_json(request))
    return web.json_response({"coupon": coupon}, status=201)


async def list_coupons(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response({"coupons": await request.app[PAYWALL].catalog.coupons(user, request.match_info["room"])})


async def edit_coupon(request: web.Request) -> web.Response:
    """``PATCH /api/rooms/{room}/coupons/{code} {"active": false}``: disable (or enable) a coupon."""
    user = await current_user(request)
    coupon = await request.app[PAYWALL].catalog.set_coupon_active(
        user, request.match_info["room"], request.match_info["code"], await read_json(request))
    return web.json_response({"coupon": coupon})


async def room_orders(request: web.Request) -> web.Response:
    """The room's paid and refunded orders (its creator, admins): what the studio refunds."""
    user = await current_user(request)
    paywall = request.app[PAYWALL]
    room = await paywall.catalog.require(request.match_info["room"])
    return web.json_response({"orders": await paywall.orders.of_room(user, room)})


async def mint_token(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await read_json(request)
    minted = await request.app[PAYWALL].access.mint(user, request.match_info["room"], body.get("scope", "view"))
    return web.json_response(minted, status=201)


# ---------------------------------------------------------------------- orders
async def create_order(request: web.Request) -> web.Response:
    user = await current_user(request)
    order, created = await request.app[PAYWALL].orders.create(user, await read_json(request), base_url(request))
    return web.json_response({"order": order.as_dict()}, status=201 if created else 200)


async def get_order(request: web.Request) -> web.Response:
    user = await current_user(request)
    order = await request.app[PAYWALL].orders.get(user, request.match_info["order"])
    return web.json_response({"order": order.as_dict()})


async def refund_order(request: web.Request) -> web.Response:
    user = await current_user(request)
    order = await request.app[PAYWALL].orders.refund(user, request.match_info["order"])
    if user.role == "admin":
        await request.app[PAYWALL].audit.record(user.id, "refund", f"order:{order.id}", amount=order.amount,
                                                currency=order.currency)
    return web.json_response({"order": order.as_dict()})


# ---------------------------------------------------------------------- dev checkout
_DEV_PAGE = """<!doctype html><html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><link rel="stylesheet" href="/static/style.css"></head>
<body><main><p class="banner" role="alert">{banner}</p>
<h1>{pay}</h1><p>{what}</p>
<form method="post"><input type="hidden" name="return" value="{back}">
<button name="action" value="confirm" id="confirm">{confirm}</button>
<button name="action" value="decline" id="decline">{decline}</button></form></main></body></html>"""


def dev_checkout_html(lang: str, amount: int, currency: str, what: str, back: str,
                      every: Optional[str] = None) -> web.Response:
    """The dev provider's checkout page (orders and passes) in ``lang``: ``what`` is plain
    text (translated by the caller), escaped here; ``every`` is a pass's period (``month``,
    ``year``), said after the amount."""
    text = partial(translate, lang)
    whole, cents = divmod(amount, 100)
    period = text(f"checkout.every_{every}", default=f" / {every}") if every else ""
    page = _DEV_PAGE.format(
        lang=lang, title=text("checkout.title"), banner=text("checkout.banner"),
        pay=html.escape(text("checkout.pay", amount=f"{whole}.{cents:02d}", currency=currency, every=period)),
        what=html.escape(what), confirm=text("checkout.confirm"), decline=text("checkout.decline"),
        back=html.escape(back, quote=True),
    )
    return web.Response(text=page, content_type="text/html", headers={"Content-Language": lang})


def return_path(candidate: object, order: OrderView) -> str:
    """Where the dev checkout sends the buyer back: ``candidate`` if it is a same-origin
    relative path, else the order's room page."""
    return return_path_for(candidate, f"/static/room.html?room={quote(order.room)}&order={quote(order.id)}")


def return_path_for(candidate: object, fallback: str) -> str:
    """``candidate`` if it is a same-origin relative path (``/...``, not ``//host`` nor
    ``/\\host``, no control characters), else ``fallback``."""
    if (isinstance(candidate, str) and 1 <= len(candidate) <= 512 and candidate.startswith("/")
            and not candidate.startswith(("//", "/\\")) and candidate.isprintable() and " " not in candidate
            and "\\" not in candidate):
        return candidate
    return fallback


def _dev_only(request: web.Request) -> None:
    if request.app[PAYWALL].provider.name != "dev":
        raise Refusal(404, "not_found", "the dev checkout is off (payment provider is not 'dev')")


async def dev_checkout_page(request: web.Request) -> web.Response:
    _dev_only(request)
    user = await current_user(request)
    order = await request.app[PAYWALL].orders.get(user, request.match_info["order"])
    if order.user_id != user.id:
        raise Refusal(404, "order_not_found", "no such order")
    lang = request_language(request)
    text = partial(translate, lang)
    what = text("checkout.what", product=text(f"checkout.product_{order.product}", default=order.product),
                room=order.room, order=order.id)
    return dev_checkout_html(lang, order.amount, order.currency, what, return_path(request.query.get("return"), order))


async def dev_checkout_submit(request: web.Request) -> web.Response:
    _dev_only(request)
    user = await current_user(request)
    paywall = request.app[PAYWALL]
    order = await paywall.orders.get(user, request.match_info["order"])
    if order.user_id != user.id:
        raise Refusal(404, "order_not_found", "no such order")
    if request.content_type == "application/json":
        action = (await read_json(request)).get("action")
    else:
        action = (await read_form(request)).get("action")
    if action not in ("confirm", "decline"):
        raise Refusal(400, "invalid_action", "action: 'confirm' or 'decline'")
    if order.status != "pending":
        raise Refusal(409, "not_pending", f"the order is already {order.status}")
    if action == "confirm":
        await paywall.orders.complete(order.id, payment_ref=f"dev-{order.id}", refuse_duplicate=True)
    else:
        await paywall.orders.decline(order.id)
    order = await paywall.orders.get(user, order.id)
    if request.content_type == "application/json":
        return web.json_response({"order": order.as_dict()})
    raise web.HTTPSeeOther(return_path((await read_form(request)).get("return"), order))


# ---------------------------------------------------------------------- stripe
async def stripe_webhook(request: web.Request) -> web.Response:
    paywall = request.app[PAYWALL]
    if paywall.provider.name != "stripe":
        raise Refusal(404, "not_found", "Stripe is not configured")
    payload = await read_bytes(request)
    event = paywall.provider.verify_event(payload, request.headers.get("Stripe-Signature"))
    outcome = await paywall.webhooks.handle_stripe(event)
    return web.json_response({"received": True, "outcome": outcome})


# ---------------------------------------------------------------------- money views
async def creator_earnings(request: web.Request) -> web.Response:
    user = await current_user(request)
    if user.role not in ("creator", "admin"):
        raise Refusal(403, "not_a_creator", "only creators have earnings")
    async with request.app[PAYWALL].db() as s:
        rows = await Ledger.creator_earnings(s, user.id)
        passes = await Ledger.creator_pass_earnings(s, user.id)
    return web.json_response({"earnings": rows, "passes": passes})


async def admin_ledger(request: web.Request) -> web.Response:
    user = await current_user(request)
    user.require_admin("see the ledger")
    async with request.app[PAYWALL].db() as s:
        totals = await Ledger.totals(s)
        unbalanced = await Ledger.unbalanced_orders(s)
    return web.json_response({"accounts": totals, "unbalanced_orders": unbalanced, "balanced": not unbalanced})


async def record_payout(request: web.Request) -> web.Response:
    """``POST /api/admin/payouts {creator_id, amount, currency, reference}`` (admins)."""
    user = await current_user(request)
    payout = await request.app[PAYWALL].payouts.record(user, await read_json(request))
    log.info("user %d recorded payout %s to creator %d", user.id, payout["id"], payout["creator_id"])
    await request.app[PAYWALL].audit.record(user.id, "payout", f"payout:{payout['id']}", creator_id=payout["creator_id"],
                                            amount=payout["amount"], currency=payout["currency"])
    return web.json_response({"payout": payout}, status=201)


async def creator_payouts(request: web.Request) -> web.Response:
    user = await current_user(request)
    if user.role not in ("creator", "admin"):
        raise Refusal(403, "not_a_creator", "only creators have payouts")
    return web.json_response({"payouts": await request.app[PAYWALL].payouts.of_creator(user.id)})


async def creator_rooms(request: web.Request) -> web.Response:
    user = await current_user(request)
    rooms = await request.app[PAYWALL].catalog.rooms_of(user)
    return web.json_response({"rooms": [r.as_dict() for r in rooms]})


def setup_routes(app: web.Application) -> None:
    app.middlewares.append(cross_site_guard(SESSION_COOKIE, lambda request: request.app[PAYWALL].settings.server.public_url))
    r = app.router
    r.add_post("/api/auth/signup", sign_up)
    r.add_post("/api/auth/login", log_in)
    r.add_post("/api/auth/logout", log_out)
    r.add_get("/api/me", me)
    r.add_get("/api/me/entitlements", my_entitlements)
    r.add_get("/api/catalog", catalog)
    r.add_get("/api/catalog/{room}", catalog_room)
    r.add_post("/api/rooms", create_room)
    r.add_patch("/api/rooms/{room}", edit_room)
    r.add_get("/api/rooms/{room}/stream-key", stream_key)
    r.add_post("/api/rooms/{room}/stream-key", stream_key)
    r.add_post("/api/rooms/{room}/coupons", add_coupon)
    r.add_get("/api/rooms/{room}/coupons", list_coupons)
    r.add_patch("/api/rooms/{room}/coupons/{code}", edit_coupon)
    r.add_get("/api/rooms/{room}/orders", room_orders)
    r.add_post("/api/rooms/{room}/tokens", mint_token)
    r.add_post("/api/orders", create_order)
    r.add_get("/api/orders/{order}", get_order)
    r.add_post("/api/orders/{order}/refund", refund_order)
    r.add_get("/pay/dev/{order}", dev_checkout_page)
    r.add_post("/pay/dev/{order}", dev_checkout_submit)
    r.add_post("/webhooks/stripe", stripe_webhook)
    r.add_get("/api/creator/earnings", creator_earnings)
    r.add_get("/api/admin/ledger", admin_ledger)
    r.add_post("/api/admin/payouts", record_payout)
    r.add_get("/api/creator/payouts", creator_payouts)
    r.add_get("/api/creator/rooms", creator_rooms)
