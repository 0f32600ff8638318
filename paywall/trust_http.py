"""HTTP of content review and trust: reports, the admins' review queue, verification,
takedowns, and the audit log."""

from __future__ import annotations

from aiohttp import web

from .http import PAYWALL, current_user, path_number, read_json

__all__ = ["setup_routes"]


async def file_report(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response({"report": await request.app[PAYWALL].reports.file(user, await read_json(request))},
                             status=201)


async def reports(request: web.Request) -> web.Response:
    user = await current_user(request)
    found = await request.app[PAYWALL].reports.open_reports(user, request.query.get("status", "open"))
    return web.json_response({"reports": found})


async def resolve_report(request: web.Request) -> web.Response:
    user = await current_user(request)
    report = await request.app[PAYWALL].reports.resolve(
        user, path_number(request, "report", "report_not_found"), await read_json(request))
    return web.json_response({"report": report})


async def verify_creator(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await read_json(request)
    result = await request.app[PAYWALL].trust.verify(
        user, path_number(request, "creator", "creator_not_found"), body.get("verified"))
    return web.json_response(result)


async def review_queue(request: web.Request) -> web.Response:
    user = await current_user(request)
    rooms = await request.app[PAYWALL].trust.queue(user, request.query.get("listing", "pending"))
    return web.json_response({"rooms": rooms})


async def decide_listing(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await read_json(request)
    room = await request.app[PAYWALL].trust.decide(user, request.match_info["room"], body.get("decision"))
    await request.app[PAYWALL].notifications.room_scheduled(room)  # listed now: followers hear of it
    return web.json_response({"room": room.as_dict()})


async def take_down(request: web.Request) -> web.Response:
    user = await current_user(request)
    result = await request.app[PAYWALL].trust.take_down(user, request.match_info["room"], await read_json(request))
    return web.json_response(result)


async def audit_log(request: web.Request) -> web.Response:
    user = await current_user(request)
    entries = await request.app[PAYWALL].audit.entries(user, request.query.get("action"))
    return web.json_response({"entries": entries})


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/reports", file_report)
    r.add_get("/api/admin/reports", reports)
    r.add_post("/api/admin/reports/{report}/resolve", resolve_report)
    r.add_post("/api/admin/creators/{creator}/verification", verify_creator)
    r.add_get("/api/admin/review-queue", review_queue)
    r.add_post("/api/admin/review-queue/{room}", decide_listing)
    r.add_post("/api/admin/rooms/{room}/takedown", take_down)
    r.add_get("/api/admin/audit", audit_log)
