"""HTTP of passes: creators' subscription plans, course series, buying and holding passes.

* ``PUT /api/creator/plans/{month|year}`` ``{price, currency, active?}`` -- the creator's offer;
  ``GET /api/creators/{creator}/plans`` -- the active offers, for anyone.
* ``POST /api/series`` ``{slug, title, price, currency, include_later?, rooms?}``,
  ``POST /api/series/{series}/rooms`` ``{room}`` (its creator), ``GET /api/series/{series}``,
  ``GET /api/creators/{creator}/series`` (a creator's series, for anyone).
* ``POST /api/passes`` ``{kind: "subscription", creator, interval, idempotency_key}`` or
  ``{kind: "series", series, idempotency_key}`` -> the pending pass and its ``checkout_url``;
  ``GET /api/me/passes``; ``GET /api/passes/{id}`` (holder, creator, admin) with its charges;
  ``POST /api/passes/{id}/cancel`` (holder: at the period's end); ``POST /api/passes/{id}/refund``
  (creator or admin: the latest payment, ending the pass at once).
* ``GET``/``POST /pay/dev/passes/{id}`` -- the dev provider's checkout (``confirm``, ``decline``,
  and to try a subscription's life without Stripe, ``renew`` and ``fail``).
"""

from __future__ import annotations

from aiohttp import web

from core.access import Refusal
from core.access_http import request_language
from core.i18n import translate

from .http import PAYWALL, base_url, current_user, dev_checkout_html, path_number, read_json, return_path_for
from .request_body import read_form

__all__ = ["setup_routes"]


async def put_plan(request: web.Request) -> web.Response:
    user = await current_user(request)
    plan = await request.app[PAYWALL].plans.put(user, request.match_info["interval"], await read_json(request))
    return web.json_response({"plan": plan})


async def creator_plans(request: web.Request) -> web.Response:
    paywall = request.app[PAYWALL]
    creator = path_number(request, "creator", "creator_not_found")
    await paywall.follows.require_creator(creator)
    return web.json_response({"plans": await paywall.plans.of_creator(creator)})


async def creator_series(request: web.Request) -> web.Response:
    paywall = request.app[PAYWALL]
    creator = path_number(request, "creator", "creator_not_found")
    await paywall.follows.require_creator(creator)
    return web.json_response({"series": await paywall.series.of_creator(creator)})


async def create_series(request: web.Request) -> web.Response:
    user = await current_user(request)
    series = await request.app[PAYWALL].series.create(user, await read_json(request))
    return web.json_response({"series": series}, status=201)


async def add_series_room(request: web.Request) -> web.Response:
    user = await current_user(request)
    series = await request.app[PAYWALL].series.add_room(user, request.match_info["series"], await read_json(request))
    return web.json_response({"series": series})


async def get_series(request: web.Request) -> web.Response:
    return web.json_response({"series": await request.app[PAYWALL].series.view(request.match_info["series"])})


async def buy_pass(request: web.Request) -> web.Response:
    user = await current_user(request)
    view, created = await request.app[PAYWALL].passes.buy(user, await read_json(request), base_url(request))
    return web.json_response({"pass": view}, status=201 if created else 200)


async def my_passes(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response({"passes": await request.app[PAYWALL].passes.of_user(user.id)})


async def get_pass(request: web.Request) -> web.Response:
    user = await current_user(request)
    passes = request.app[PAYWALL].passes
    p = await passes.get(user, request.match_info["pass"])
    return web.json_response({"pass": await passes.view_of(p), "charges": await passes.charges(p.id)})


async def cancel_pass(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response({"pass": await request.app[PAYWALL].passes.cancel(user, request.match_info["pass"])})


async def refund_pass(request: web.Request) -> web.Response:
    user = await current_user(request)
    paywall = request.app[PAYWALL]
    view = await paywall.passes.refund(user, request.match_info["pass"])
    if user.role == "admin":
        await paywall.audit.record(user.id, "refund", f"pass:{view['id']}", amount=view["amount"],
                                   currency=view["currency"])
    return web.json_response({"pass": view})


_DEV_ACTIONS = ("confirm", "decline", "renew", "fail")


async def _dev_pass(request: web.Request):
    if request.app[PAYWALL].provider.name != "dev":
        raise Refusal(404, "not_found", "the dev checkout is off (payment provider is not 'dev')")
    user = await current_user(request)
    p = await request.app[PAYWALL].passes.get(user, request.match_info["pass"])
    if p.user_id != user.id:
        raise Refusal(404, "pass_not_found", "no such pass")
    return p


async def dev_pass_page(request: web.Request) -> web.Response:
    p = await _dev_pass(request)
    lang = request_language(request)
    what = translate(lang, f"checkout.what_{p.kind}", creator=p.creator_id, id=p.id)
    return dev_checkout_html(lang, p.amount, p.currency, what,
                             return_path_for(request.query.get("return"), f"/static/creator.html?id={p.creator_id}"),
                             every=p.interval)


async def dev_pass_submit(request: web.Request) -> web.Response:
    p = await _dev_pass(request)
    passes = request.app[PAYWALL].passes
    as_json = request.content_type == "application/json"
    form = await read_json(request) if as_json else await read_form(request)
    action = form.get("action")
    if action not in _DEV_ACTIONS:
        raise Refusal(400, "invalid_action", f"action: one of {', '.join(_DEV_ACTIONS)}")
    await passes.dev_confirm(p, action)
    if as_json:
        return web.json_response({"pass": await passes.view_of(await passes.get(await current_user(request), p.id))})
    raise web.HTTPSeeOther(return_path_for(form.get("return"), f"/static/creator.html?id={p.creator_id}"))


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_put("/api/creator/plans/{interval}", put_plan)
    r.add_get("/api/creators/{creator}/plans", creator_plans)
    r.add_get("/api/creators/{creator}/series", creator_series)
    r.add_post("/api/series", create_series)
    r.add_get("/api/series/{series}", get_series)
    r.add_post("/api/series/{series}/rooms", add_series_room)
    r.add_post("/api/passes", buy_pass)
    r.add_get("/api/me/passes", my_passes)
    r.add_get("/api/passes/{pass}", get_pass)
    r.add_post("/api/passes/{pass}/cancel", cancel_pass)
    r.add_post("/api/passes/{pass}/refund", refund_pass)
    r.add_get("/pay/dev/passes/{pass}", dev_pass_page)
    r.add_post("/pay/dev/passes/{pass}", dev_pass_submit)
