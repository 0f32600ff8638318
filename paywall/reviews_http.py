"""HTTP of ratings and reviews: a room's reviews, writing one, the creator's reply, and the
admins' moderation queue."""

from __future__ import annotations

from aiohttp import web

from .http import PAYWALL, current_user, optional_user, path_number, read_json

__all__ = ["setup_routes"]


async def room_reviews(request: web.Request) -> web.Response:
    """``{"rating": {average, count}, "reviews": [approved], "mine": review | null}``"""
    paywall = request.app[PAYWALL]
    room = await paywall.catalog.require(request.match_info["room"])
    return web.json_response(await paywall.reviews.of_room(room, await optional_user(request)))


async def write_review(request: web.Request) -> web.Response:
    user = await current_user(request)
    paywall = request.app[PAYWALL]
    room = await paywall.catalog.require(request.match_info["room"])
    review = await paywall.reviews.write(user, room, await read_json(request))
    return web.json_response({"review": review}, status=201)


async def reply(request: web.Request) -> web.Response:
    user = await current_user(request)
    review = await request.app[PAYWALL].reviews.reply(user, path_number(request, "review", "review_not_found"), await read_json(request))
    return web.json_response({"review": review})


async def moderation_queue(request: web.Request) -> web.Response:
    user = await current_user(request)
    reviews = await request.app[PAYWALL].reviews.queue(user, request.query.get("status", "pending"))
    return web.json_response({"reviews": reviews})


async def moderate(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await read_json(request)
    review = await request.app[PAYWALL].reviews.moderate(user, path_number(request, "review", "review_not_found"), body.get("decision"))
    return web.json_response({"review": review})


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/rooms/{room}/reviews", room_reviews)
    r.add_post("/api/rooms/{room}/reviews", write_review)
    r.add_post("/api/reviews/{review}/reply", reply)
    r.add_get("/api/admin/reviews", moderation_queue)
    r.add_post("/api/admin/reviews/{review}", moderate)
