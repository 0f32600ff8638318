"""The admin view's API (admins only): every node of the cluster, this node's live rooms,
and two actions.

* ``GET /api/admin/nodes``: ``{this_node, nodes: [{id, url, this, load: {cpu_pct,
  event_loop_lag_ms, rooms_live, publishers, viewers}, rooms, last_heartbeat,
  heartbeat_age_s}], rooms: [{room, node, url}]}``, read from the ``NodeRegistry``: what
  each node said of itself at its last heartbeat, and which node hosts each live room.
  503 ``cluster_unavailable`` while the registry's store (Redis) does not answer.

* ``GET /api/admin/live``: ``{node: {id, event_loop_lag_ms, cpu_pct, rooms_live, viewers,
  workers}, rooms: [{room, phase, broadcast, publisher: {id, codecs, ingest_kbps}, viewers,
  loss: {mean, worst}, keyframe_requests, workers}]}``. ``ingest_kbps`` and ``cpu_pct`` are
  rates between two readings, so the first answer after a start has them ``null``; the
  page polls every 2 s. With media workers (``--workers N``), ``node.workers`` lists each
  (``WorkerLoads``: index, pid, running or restarting, sessions, rooms hosted, CPU, loop
  lag; ``null`` in one process) and a room's ``workers`` says which worker hosts it and
  how many of its viewers each has; the room's figures are its workers' (``WorkerRoom``).
  A node's ``load`` in ``/api/admin/nodes`` carries the same ``workers`` list.
* ``POST /api/admin/rooms/{room}/end``: ends the broadcast, as the creator's WHIP DELETE.
* ``POST /api/admin/rooms/{room}/viewers/{viewer}/disconnect``: ends one viewer's session
  (``viewer`` is the 8-character id the viewers API and the logs show).

Errors: 401 ``login_required``, 403 ``admin_only``, 404 ``room_not_found`` /
``not_live`` / ``viewer_not_found``. A room hosted by another node is ended, and its
viewers disconnected, on that node (its ``url``).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Optional

from aiohttp import web

from core.cluster import NodeRegistry
from mediaserver.live.room import Room
from core.access import Refusal
from core.access_http import refusal_response
from signalling.whip import ROOMS, SETTINGS

from mediaserver.workers.remote import WorkerRoom, WorkerRooms

from .http import METRICS
from .load import CpuMeter, WorkerLoads

__all__ = ["AdminView", "ADMIN_VIEW", "NODE_REGISTRY", "setup_routes"]

log = logging.getLogger("stagepass.admin")


class AdminView:
    """Keeps the previous readings the rates are computed from."""

    def __init__(self) -> None:
        self._ingest: dict[str, tuple[float, int]] = {}  # publisher id -> (time, bytes received)
        self.cpu = CpuMeter()
        self._workers: Optional[WorkerLoads] = None

    def workers(self, rooms: object) -> Optional[list[dict]]:
        """Each media worker's load (``WorkerLoads``); None in one process."""
        if not isinstance(rooms, WorkerRooms):
            return None
        if self._workers is None:
            self._workers = WorkerLoads(rooms)
        return self._workers.read()

    async def ingest_kbps(self, room: Room) -> Optional[float]:
        publisher = room.publisher
        received = await publisher.bytes_received() if publisher is not None else None
        if received is None:
            return None
        now = time.monotonic()
        previous = self._ingest.get(publisher.id)
        self._ingest[publisher.id] = (now, received)
        if previous is None or now - previous[0] < 0.2:
            return None
        return round((received - previous[1]) * 8 / (now - previous[0]) / 1000, 1)

    def forget_others(self, publisher_ids: set[str]) -> None:
        for gone in set(self._ingest) - publisher_ids:
            del self._ingest[gone]


ADMIN_VIEW = web.AppKey("admin_view", AdminView)
NODE_REGISTRY = web.AppKey("admin_node_registry", NodeRegistry)


async def _admin(request: web.Request) -> Optional[web.Response]:
    """None for an admin, else the refusal."""
    from paywall.http import optional_user

    user = await optional_user(request)
    if user is None:
        return refusal_response(Refusal(401, "login_required", "log in first"), request)
    try:
        user.require_admin("see the admin view")
    except Refusal as refusal:
        return refusal_response(refusal, request)
    return None


async def live(request: web.Request) -> web.Response:
    refusal = await _admin(request)
    if refusal is not None:
        return refusal
    view = request.app[ADMIN_VIEW]
    rooms = []
    for room in request.app[ROOMS]:
        if room.publisher is None and not room.subscribers and room.broadcast is None:
            continue
        losses = []
        for subscriber in list(room.subscribers.values()):
            video = (await subscriber.quality()).get("video") or {}
            if video.get("fraction_lost") is not None:
                losses.append(video["fraction_lost"])
        keyframes = getattr(room.fanouts.get("video"), "keyframes", None)  # with workers: the host's
        rooms.append({
            "room": room.name,
            "phase": room.phase,
            "broadcast": {"id": room.broadcast.id, "t_ms": room.broadcast.t_ms()} if room.broadcast else None,
            "publisher": None if room.publisher is None else {
                "id": room.publisher.id[:8], "codecs": dict(room.publisher.codecs),
                "ingest_kbps": await view.ingest_kbps(room)},
            "viewers": room.viewer_count(),
            "loss": {"mean": round(sum(losses) / len(losses), 4) if losses else None,
                     "worst": max(losses) if losses else None},
            "keyframe_requests": {"requested": keyframes.requested, "sent": keyframes.sent} if keyframes else None,
            "workers": room.placement() if isinstance(room, WorkerRoom) else None,
        })
    view.forget_others({r.publisher.id for r in request.app[ROOMS] if r.publisher is not None})
    lag = request.app[METRICS].lag_sampler.last_lag
    rooms.sort(key=lambda r: (-r["viewers"], r["room"]))
    node = {
        "id": request.app[SETTINGS].node_id(),
        "event_loop_lag_ms": None if lag is None else round(lag * 1000, 2),
        "cpu_pct": view.cpu.rate(),
        "rooms_live": len(rooms),
        "viewers": sum(r["viewers"] for r in rooms),
        "workers": view.workers(request.app[ROOMS]),
    }
    return web.json_response({"node": node, "rooms": rooms})


async def nodes(request: web.Request) -> web.Response:
    refusal = await _admin(request)
    if refusal is not None:
        return refusal
    registry = request.app[NODE_REGISTRY]
    try:
        entries = await registry.nodes()
    except Exception as exc:  # the shared store is down: say so, not a 500
        log.warning("admin view: the node registry does not answer (%s: %s)", type(exc).__name__, exc)
        raise Refusal(503, "cluster_unavailable", "the node registry does not answer; try again")
    now = time.time()
    listed, hosts = [], {}
    for node in entries:
        listed.append({
            "id": node.id, "url": node.info.get("url"), "this": node.id == registry.node_id,
            "load": node.load, "rooms": node.rooms,
            "last_heartbeat": datetime.fromtimestamp(node.seen_at, timezone.utc).isoformat(timespec="milliseconds"),
            "heartbeat_age_s": round(max(0.0, now - node.seen_at), 1),
        })
        for room in node.rooms:
            hosts[room] = node
    rooms = [{"room": room, "node": node.id, "url": node.info.get("url")} for room, node in sorted(hosts.items())]
    return web.json_response({"this_node": registry.node_id, "nodes": listed, "rooms": rooms})


async def end_broadcast(request: web.Request) -> web.Response:
    refusal = await _admin(request)
    if refusal is not None:
        return refusal
    name = request.match_info["room"]
    room = request.app[ROOMS].get(name)
    if room is None or (room.publisher is None and room.broadcast is None):
        return refusal_response(Refusal(404, "not_live", f"room {name!r} has no broadcast on this node"), request)
    if room.publisher is not None:
        await room.publisher.close()
    await room.end_broadcast()
    log.info("an admin ended the broadcast of room %s", name)
    return web.json_response({"room": name, "phase": room.phase})


async def disconnect_viewer(request: web.Request) -> web.Response:
    refusal = await _admin(request)
    if refusal is not None:
        return refusal
    name, label = request.match_info["room"], request.match_info["viewer"]
    room = request.app[ROOMS].get(name)
    if room is None:
        return refusal_response(Refusal(404, "room_not_found", f"no live room named {name!r} on this node"), request)
    matches = [s for s in room.subscribers.values() if s.id[:8] == label]
    if len(matches) != 1:
        return refusal_response(Refusal(404, "viewer_not_found", f"no viewer {label!r} in room {name!r}"), request)
    await matches[0].close()
    log.info("an admin disconnected viewer %s of room %s", label, name)
    return web.json_response({"room": name, "viewer": label, "viewers": len(room.subscribers)})


def setup_routes(app: web.Application, registry: NodeRegistry) -> None:
    """``registry``: the cluster's node registry (this node's, in one process)."""
    app[ADMIN_VIEW] = AdminView()
    app[NODE_REGISTRY] = registry
    app.router.add_get("/api/admin/live", live)
    app.router.add_get("/api/admin/nodes", nodes)
    app.router.add_post("/api/admin/rooms/{room}/end", end_broadcast)
    app.router.add_post("/api/admin/rooms/{room}/viewers/{viewer}/disconnect", disconnect_viewer)
