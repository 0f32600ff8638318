"""Wires the operator side into the app: metrics, readiness checks, routes, the lag task."""

from __future__ import annotations

from typing import Any, AsyncIterator, Optional

from aiohttp import web

from core.cluster import Cluster
from core.settings import Settings
from mediaserver.live.room import RoomRegistry
from mediaserver.workers.remote import WorkerRooms

from ops.health import Readiness, cluster_check, data_dir_check, database_check, storage_check
from ops import admin
from stagepass.keys import NODES, PACKAGING
from ops.http import METRICS, READINESS, setup_routes
from ops.metrics import Metrics

__all__ = ["install_ops"]


def install_ops(app: web.Application, settings: Settings, rooms: RoomRegistry | WorkerRooms, metrics: Metrics,
                cluster: Cluster, with_paywall: bool, storage: Optional[Any] = None) -> None:
    """``metrics`` must be the ``rooms``' observer (``RoomRegistry(settings, metrics)``);
    ``cluster``: a shared one is a readiness check (``redis``);
    ``storage``: where replays are published, when not the data dir (a readiness check)."""
    app[METRICS] = metrics
    readiness = Readiness()
    app[READINESS] = readiness
    readiness.add("data_dir", data_dir_check(settings.server.data_dir))
    if isinstance(rooms, WorkerRooms):  # --workers N: each worker runs (not while one restarts)
        readiness.add("media_workers", rooms.pool.readiness)
    if storage is not None:
        readiness.add("storage", storage_check(storage))
    if with_paywall:
        from paywall.http import PAYWALL

        async def database() -> Optional[str]:
            paywall = app.get(PAYWALL)
            if paywall is None:
                return "the database is not open yet"
            return await database_check(paywall.db.engine)()

        readiness.add("database", database)
    orders: list = []  # the order counter, once the database is open

    metrics.watch(rooms, extra={"socketio": lambda: _socketio(app), "packaging": lambda: _packaging(app),
                                "gc": _gc,
                                "orders": lambda: orders[0].metrics() if orders else None})

    async def ops_ctx(app: web.Application) -> AsyncIterator[None]:
        if cluster.shared:
            readiness.add(cluster.kind, cluster_check(cluster))
        metrics.lag_sampler.start()
        jobs = app.get(PACKAGING)  # its context runs before this one
        if jobs is not None:
            jobs.listeners.append(metrics.recording_packaged)
        yield
        await metrics.lag_sampler.close()

    app.cleanup_ctx.append(ops_ctx)
    if with_paywall:
        async def orders_ctx(app: web.Application) -> AsyncIterator[None]:
            """After the paywall's context (registered before this one): the database is open."""
            from paywall.http import PAYWALL

            from ops.business import OrderCounts

            counter = OrderCounts(app[PAYWALL].db, interval=settings.ops.metrics_orders_seconds)
            orders.append(counter)
            counter.start()
            yield
            await counter.close()

        app.cleanup_ctx.append(orders_ctx)
    _time_danmaku(app, metrics)
    setup_routes(app, with_paywall)
    if with_paywall:
        admin.setup_routes(app, app[NODES])


def _time_danmaku(app: web.Application, metrics: Metrics) -> None:
    """Danmaku delivery delay: the danmaku batcher tells ``metrics`` each frame it wrote."""
    from interaction.assembly import INTERACTION

    interaction = app.get(INTERACTION)  # built before the operator side
    if interaction is not None:
        interaction.danmaku.batcher.written = metrics.danmaku_written


def _socketio(app: web.Application) -> Optional[dict]:
    from interaction.assembly import INTERACTION

    interaction = app.get(INTERACTION)
    if interaction is None:
        return None
    rows, stats = interaction.danmaku.rows, interaction.server.manager.stats
    return {"stagepass_socketio_connections": ("gauge", "Socket.IO clients connected to a room",
                                               len(interaction.server.clients)),
            "stagepass_danmaku_delivered": ("counter", "Danmaku broadcast to their room (once per message)",
                                            interaction.danmaku.batcher.items),
            "stagepass_danmaku_frames": ("counter", "Danmaku frames (one or more danmaku) sent to a room",
                                         interaction.danmaku.batcher.frames),
            "stagepass_danmaku_rows_queued": ("gauge", "Danmaku acknowledged and not written to the database yet",
                                              len(rows) if rows is not None else 0),
            "stagepass_socketio_writes": ("counter", "Socket.IO room packets handed to viewers, by path "
                                          "(direct: the shared frame written to the socket; queued: through "
                                          "engine.io's queue)",
                                          [((("path", "direct"),), stats.direct),
                                           ((("path", "queued"),), stats.queued)])}


def _gc() -> dict:
    """How long the garbage collector stopped this process, by generation."""
    from core.heap import gc_pauses

    return {"stagepass_gc_pause_seconds": (
        "counter", "Seconds the garbage collector stopped the process, by generation",
        [((("generation", str(g)),), gc_pauses.seconds[g]) for g in range(3)])}


def _packaging(app: web.Application) -> Optional[dict]:
    jobs = app.get(PACKAGING)
    if jobs is None:
        return None
    state = jobs.state()
    return {
        "stagepass_packaging_jobs_finished": ("counter", "Recordings packaged into HLS replays", state["finished"]),
        "stagepass_packaging_jobs_failed": ("counter", "Recordings whose packaging failed for good", state["failed"]),
        "stagepass_packaging_jobs_queued": ("gauge", "Recordings waiting to be packaged", state["queued"]),
    }
