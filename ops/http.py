"""Operator endpoints: ``GET /metrics``, ``/healthz``, ``/readyz``, and a room's viewers.

* ``/metrics``: Prometheus text format, only with ``Authorization: Bearer
  <STAGEPASS_METRICS_TOKEN>`` (401 otherwise); 404 while no token is configured.
* ``/healthz``: the process and its event loop answer (200, with the latest loop lag).
* ``/readyz``: every readiness check (database, Redis when configured, the data
  directory): 200 with each result, or 503 naming the ones that failed.
* ``/api/rooms/{room}/viewers``: each viewer's connection quality (its RTCP receiver
  reports and the server's counters), for the room's creator and admins.

``http_metrics`` is the middleware counting requests by route *template* (``/whep/{room}``,
never the room or a token) and status, with their latency.
"""

from __future__ import annotations

import hmac
import time
from typing import Awaitable, Callable

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from core.access import Refusal, bearer_token
from core.access_http import refusal_response
from signalling.whip import ROOMS, SETTINGS

from .health import Readiness
from .metrics import Metrics

__all__ = ["METRICS", "READINESS", "http_metrics", "setup_routes"]

METRICS = web.AppKey("metrics", Metrics)
READINESS = web.AppKey("readiness", Readiness)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: routes whose requests stay open (Socket.IO's WebSocket and long polling): counted, not timed
LONG_LIVED = ("/socket.io",)


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def http_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[METRICS]
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = _route_of(request)
        metrics.http_requests.labels(request.method, route, str(status)).inc()
        if not route.startswith(LONG_LIVED):  # a WebSocket's or long poll's life is not a latency
            metrics.http_seconds.labels(request.method, route).observe(time.perf_counter() - started)


async def metrics_endpoint(request: web.Request) -> web.Response:
    expected = request.app[SETTINGS].ops.metrics_token
    if not expected:
        return refusal_response(Refusal(404, "not_found", "metrics are off: set STAGEPASS_METRICS_TOKEN to serve /metrics"), request)
    token = bearer_token(request)
    if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
        response = refusal_response(Refusal(401, "unauthorized", "GET /metrics needs 'Authorization: Bearer <metrics token>'"), request)
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    metrics = request.app[METRICS]
    await metrics.refresh()  # the media workers' samples, with workers
    response = web.Response(body=metrics.exposition())
    response.headers["Content-Type"] = CONTENT_TYPE_PLAIN_0_0_4
    return response


async def healthz(request: web.Request) -> web.Response:
    lag = request.app[METRICS].lag_sampler.last_lag
    return web.json_response({"status": "ok", "event_loop_lag_ms": None if lag is None else round(lag * 1000, 2)})


async def readyz(request: web.Request) -> web.Response:
    checks = await request.app[READINESS].run()
    failed = [name for name, result in checks.items() if not result["ok"]]
    if not failed:
        return web.json_response({"status": "ready", "checks": checks})
    message = "; ".join(f"{name}: {checks[name]['error']}" for name in failed)
    return web.json_response({"status": "not_ready", "failed": failed, "checks": checks,
                              "error": {"code": "not_ready", "message": message}}, status=503)


async def room_viewers(request: web.Request) -> web.Response:
    """``GET /api/rooms/{room}/viewers``: the room's creator and admins only."""
    from paywall.http import PAYWALL, optional_user

    slug = request.match_info["room"]
    paywall = request.app[PAYWALL]
    user = await optional_user(request)
    if user is None:
        return refusal_response(Refusal(401, "login_required", "log in first"), request)
    room = await paywall.catalog.get(slug)
    is_open_room = slug in paywall.catalog.reserved
    if room is None and not is_open_room:
        return refusal_response(Refusal(404, "room_not_found", f"no room named {slug!r}"), request)
    if user.role != "admin" and (room is None or room.creator_id != user.id):
        return refusal_response(Refusal(403, "not_your_room", "only the room's creator and admins see its viewers"), request)
    live = request.app[ROOMS].get(slug)
    viewers = []
    for subscriber in list(live.subscribers.values()) if live is not None else []:
        quality = await subscriber.quality()  # first: with workers, it also brings the first media time
        viewers.append({
            "id": subscriber.id[:8],
            "user_id": subscriber.user_id,
            "state": subscriber.state,
            "rendition": subscriber.rendition,
            "connected_s": round(time.monotonic() - subscriber.created, 1),
            "first_media_ms": (None if subscriber.first_media_seconds is None
                               else round(subscriber.first_media_seconds * 1000)),
            **({"worker": subscriber.worker} if hasattr(subscriber, "worker") else {}),  # with media workers
            **quality,
        })
    return web.json_response({"room": slug, "phase": live.phase if live is not None else "idle",
                              "viewers": viewers})


def setup_routes(app: web.Application, with_paywall: bool) -> None:
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if with_paywall:  # the creator's and admins' views need accounts
        app.router.add_get("/api/rooms/{room}/viewers", room_viewers)
    app.middlewares.insert(0, http_metrics)
