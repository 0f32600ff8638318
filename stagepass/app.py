"""Assembling the aiohttp application: paywall, live rooms, signalling and pages."""

from __future__ import annotations

import hmac
import logging
from pathlib import Path
from typing import AsyncIterator, Optional

from aiohttp import web

from core.heap import gc_pauses

import web as web_assets
from web.share import setup_share_routes
from web.i18n import setup_i18n_routes
from web.vendor import setup_vendor_routes
from interaction.assembly import build_interaction
from interaction.ban_door import BanDoor
from insight.assembly import install_insight, open_insight
from stagepass.keys import AUDIENCE, CLUSTER, NODES, NOTIFICATIONS, PACKAGING, RTMP
from stagepass.operations import install_ops
from stagepass.interaction_workers import install_interaction_workers, interaction_cluster
from ops.load import NodeLoad
from ops.metrics import Metrics
from paywall import http as paywall_http
from paywall import clips_http, replay_http
from paywall import dashboard_http
from paywall import community_http, passes_http
from paywall import reviews_http
from paywall import trust_http
from paywall.audience import AudienceSampler
from paywall.seats import Seats
from paywall.db_budget import check_connection_budget
from paywall.service import Paywall
from signalling.admission import Admission
from signalling.edges import Edges
from signalling.relay_tokens import RelayDoor, RelayTokens
from signalling.whip import ADMISSION, BEHAVIOUR, EDGES, ROOMS, SETTINGS, setup_routes

from mediaserver.sfu.aiortc_bridge import check_aiortc_version
from core.access import Door
from core.access_http import ACCESS, refusal_middleware
from core.cluster import LocalCluster, NodeRegistry, RedisCluster
from core.settings import Settings
from mediaserver.ingest.rtmp_server import PublishClaim, RtmpHandover, RtmpIngest
from mediaserver.packaging.clips import ClipLibrary
from mediaserver.packaging.jobs import PackagingJobs
from mediaserver.recording.manifest import MANIFEST_NAME, recording_dir
from mediaserver.packaging.replays import Replays
from mediaserver.live.room import Room, RoomRegistry
from mediaserver.workers.remote import WorkerRooms
from mediaserver.workers.sessions import WorkerSession
from mediaserver.storage import StorageError, open_storage, publishes
from mediaserver.packaging.uploads import ReplayUploads
from mediaserver.packaging.options import PackageOptions

__all__ = ["AUDIENCE", "CLUSTER", "NODES", "PACKAGING", "RTMP", "create_app"]


storage_log = logging.getLogger("stagepass.storage")
rtmp_log = logging.getLogger("stagepass.rtmp")
STATIC_DIR = Path(web_assets.__file__).parent / "static"


def create_app(settings: Settings, access: Optional[Door] = None) -> web.Application:
    """The whole server. With ``access`` given (``core.access.StreamKeyAccess``), the
    paywall is left out (media-only tests and benchmarks); otherwise the door is the
    paywall's (rooms, tickets, replays), which also opens the rooms of ``STAGEPASS_ROOMS``."""
    check_aiortc_version()
    app = web.Application(client_max_size=settings.media.max_sdp_bytes)
    app[SETTINGS] = settings

    metrics = Metrics()
    # one process, or a control plane beside media workers (``--workers N``)
    rooms = (WorkerRooms(settings, settings.media.workers, observer=metrics) if settings.media.workers > 1
             else RoomRegistry(settings, observer=metrics))
    storage = open_storage(settings.recording.storage_url, settings.server.data_dir)
    publishing = publishes(storage, settings.server.data_dir)
    # the one place that decides between one process and several nodes
    cluster = RedisCluster.from_url(settings.server.redis_url) if settings.server.redis_url else LocalCluster()
    app[CLUSTER] = cluster
    node_load = NodeLoad(rooms, metrics.lag_sampler)  # what the admin view shows of every node
    nodes = NodeRegistry(cluster, settings.node_id(), hosted_rooms=lambda: [r["room"] for r in rooms.on_air()],
                         info={"url": settings.node_url()}, interval=settings.server.node_heartbeat_seconds,
                         load=lambda: {**node_load.read(), "live": rooms.on_air(), "audience": rooms.audience()})
    app[NODES] = nodes
    # nodes sharing rooms: edges pull from origins with relay tokens every node can check
    relay_tokens = RelayTokens(settings.signing_secret()) if cluster.shared else None
    edges = Edges(nodes, rooms, relay_tokens) if relay_tokens is not None else None
    if edges is not None:
        app[EDGES] = edges

    def with_relays(door: Door) -> Door:
        return RelayDoor(door, relay_tokens) if relay_tokens is not None else door

    async def cluster_ctx(app: web.Application) -> AsyncIterator[None]:
        """First in, last out: everything below shares the cluster until it stops."""
        await nodes.start()
        if edges is not None:
            await edges.start()

        async def released(room, broadcast) -> None:
            await nodes.release_room(room.name)

        rooms.broadcast_ended.append(released)
        yield
        if edges is not None:
            await edges.close()
        await nodes.close()
        await cluster.close()

    app.cleanup_ctx.append(cluster_ctx)
    seats = Seats(cluster)
    if access is not None:
        app[ACCESS] = with_relays(access)
        app[ADMISSION] = Admission(seats)
    else:
        chat_cluster = interaction_cluster(settings, cluster)  # the local bus with workers and no Redis
        interaction = build_interaction(app, settings, chat_cluster)

        async def paywall_ctx(app: web.Application) -> AsyncIterator[None]:
            await seats.start()
            admission = Admission(seats)
            paywall = await Paywall.open(settings, on_revoked=admission.revoke, open_rooms=settings.stream_keys())
            await check_connection_budget(paywall.db, settings)  # workers and their pools included
            app[paywall_http.PAYWALL] = paywall
            app[ADMISSION] = admission
            app[ACCESS] = with_relays(BanDoor(paywall.access, paywall.catalog, interaction.moderation))
            interaction.server.bind(paywall, rooms, admission)
            await interaction.start()
            insight = await open_insight(app, chat_cluster)  # serves the workers' event writer
            app[BEHAVIOUR] = interaction.server.events = insight.events
            insight.privacy.flushers.append(interaction.danmaku.flush)  # danmaku rows written behind
            audience = AudienceSampler(paywall.audience, rooms, settings.paywall.audience_sample_seconds, settings.node_id(),
                                       count=edges.audience_of if edges is not None else Room.viewer_count)
            audience.attach(rooms)
            app[AUDIENCE] = audience
            await audience.start()
            notifications = paywall.notifications
            notifications.start(settings.notifications.reminder_check_seconds)

            async def went_live(room, broadcast) -> None:
                """Followers hear of a broadcast once its first media arrived: one whose
                publisher never connected is discarded and was never live."""
                notifications.tasks.spawn(notifications.room_live(room.name, broadcast.id), name=f"notify-live-{room.name}")

            rooms.broadcast_confirmed.append(went_live)

            async def taken_down(name: str) -> None:
                """A room taken down ends its live broadcast on this node."""
                live = rooms.get(name)
                if live is not None and live.publisher is not None:
                    await live.publisher.close()
                if live is not None:
                    await live.end_broadcast()

            paywall.trust.on_takedown = taken_down
            app[NOTIFICATIONS] = notifications
            yield
            rooms.broadcast_confirmed.remove(went_live)
            await audience.close()
            await interaction.close()
            await insight.close()
            await paywall.close()
            await seats.close()

        app.cleanup_ctx.append(paywall_ctx)
        paywall_http.setup_routes(app)
        app[replay_http.RECORDINGS] = Replays(
            settings.server.data_dir, storage if publishing else None, proxy=settings.recording.storage_proxy)
        replay_http.setup_routes(app)
        app[clips_http.CLIPS] = ClipLibrary(settings.server.data_dir)
        clips_http.setup_routes(app)
        setup_share_routes(app)
        dashboard_http.setup_routes(app)
        community_http.setup_routes(app)
        passes_http.setup_routes(app)
        reviews_http.setup_routes(app)
        trust_http.setup_routes(app)
        install_insight(app)

    def is_recording(room: str, broadcast: str) -> bool:
        live = rooms.get(room)
        return live is not None and live.recorder is not None and live.recorder.broadcast.id == broadcast

    async def packaging_ctx(app: web.Application) -> AsyncIterator[None]:
        """Recordings become HLS after their broadcast ends; unfinished jobs resume at start.
        Registered before the rooms so that on shutdown recorders finish writing first.
        With object storage, packaged replays are then uploaded (``ReplayUploads``); a store
        that fails its check at start is reported in one line and replays stay local."""
        uploads: Optional[ReplayUploads] = None
        options = PackageOptions()
        if publishing:
            try:
                await storage.check()
            except StorageError as exc:
                storage_log.error("storage %s: recording goes on to local disk; replays stay there until the "
                                  "store works and `stagepass storage migrate` publishes them", exc)
            else:
                uploads = ReplayUploads(settings.server.data_dir, storage, keep_local=settings.recording.keep_local)
                options = PackageOptions(done_status="packaged")
                storage_log.info("replays are published to %s", storage.location.url)
        jobs = PackagingJobs(settings.server.data_dir, options, is_recording=is_recording)
        app[PACKAGING] = jobs
        await jobs.start()
        await jobs.resume()
        if uploads is not None:
            app[replay_http.UPLOADS] = uploads
            await uploads.start()
            await uploads.resume()

            def upload_packaged(path: Path, manifest: dict) -> None:
                if manifest.get("status") == "packaged":
                    uploads.enqueue(path)

            jobs.listeners.append(upload_packaged)

        def replay_ready(path: Path, manifest: dict) -> None:
            """Followers hear of a replay once it is servable (a local replay: packaged ``ready``)."""
            notifications = app.get(NOTIFICATIONS)
            if notifications is not None and manifest.get("status") == "ready":
                notifications.tasks.spawn(notifications.replay_ready(path.parent.name, path.name),
                                          name=f"notify-replay-{path.name}")

        jobs.listeners.append(replay_ready)

        async def package_ended(room, broadcast) -> None:
            if broadcast.discarded:  # its empty recording was removed
                return
            directory = recording_dir(settings.server.data_dir, room.name, broadcast.id)
            if (directory / MANIFEST_NAME).exists():
                jobs.enqueue(directory)

        rooms.broadcast_ended.append(package_ended)
        yield
        await jobs.close()
        if uploads is not None:
            await uploads.close()
        await storage.close()

    app.cleanup_ctx.append(packaging_ctx)

    async def rooms_ctx(app: web.Application) -> AsyncIterator[None]:
        app[ROOMS] = rooms
        await rooms.start()
        yield
        await rooms.close()

    app.cleanup_ctx.append(rooms_ctx)

    async def rtmp_ctx(app: web.Application) -> AsyncIterator[None]:
        """RTMP encoders publish into the same rooms (``STAGEPASS_RTMP_PORT``, 0: off).
        After the rooms in the list, so its connections end before the rooms close."""
        config_rooms = {key: room for room, key in settings.stream_keys().items()}

        async def resolve_key(key: str) -> Optional[str]:
            room = next((r for k, r in config_rooms.items() if hmac.compare_digest(k.encode(), key.encode())), None)
            paywall = app.get(paywall_http.PAYWALL)
            if room is None and paywall is not None:
                room = await paywall.catalog.room_for_stream_key(key)
            return room

        async def hand_off(handover: RtmpHandover, claim: Optional[PublishClaim]) -> WorkerSession:
            """With media workers, the encoder's connection goes on in its room's host worker,
            which asks for ``claim`` before it answers the encoder."""
            return await rooms.open(handover.room).publish_rtmp(handover, claim)  # type: ignore[union-attr]

        async def live_elsewhere(room: str) -> Optional[str]:
            """Several nodes: an encoder is refused while another node originates the room (as WHIP's 409)."""
            try:
                origin = await edges.origin_elsewhere(room) if edges is not None else None
            except Exception as exc:  # as WHIP's 503: the shared registry does not answer
                return f"the node registry does not answer ({type(exc).__name__}); try again"
            if origin is None:
                return None
            return f"room {room!r} is live on node {origin.id} ({origin.info.get('url', '?')}); publish there"

        async def claim(room: str) -> Optional[str]:
            """Several nodes: the accepted encoder's node becomes the room's origin, unless
            another node claimed it first (as WHIP's 409 after its claim)."""
            try:
                held = await edges.claim(room) if edges is not None else True
            except Exception as exc:
                return f"the node registry does not answer ({type(exc).__name__}); try again"
            return None if held else f"room {room!r} went live on another node first"

        ingest = RtmpIngest(rooms, resolve_key, opus_bitrate=settings.media.rtmp_audio_bitrate,
                            hand_off=hand_off if isinstance(rooms, WorkerRooms) else None,
                            may_publish=live_elsewhere if edges is not None else None,
                            claim=claim if edges is not None else None)
        try:
            await ingest.start(settings.server.host, settings.media.rtmp_port)
        except OSError as exc:
            rtmp_log.error("RTMP ingest cannot listen on %s:%d (%s): RTMP publishing is off on this node",
                           settings.server.host, settings.media.rtmp_port, exc.strerror or exc)
        app[RTMP] = ingest
        yield
        await ingest.close()

    if settings.media.rtmp_port:
        app.cleanup_ctx.append(rtmp_ctx)
    setup_routes(app)
    install_ops(app, settings, rooms, metrics, cluster, with_paywall=access is None,
                storage=storage if publishing else None)

    async def index(request: web.Request) -> web.StreamResponse:
        """The catalog (home page); the player stays at /static/watch.html."""
        return web.FileResponse(STATIC_DIR / "index.html")

    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False)
    setup_vendor_routes(app)
    setup_i18n_routes(app)
    if access is None and settings.interaction.interaction_workers > 1:
        install_interaction_workers(app, settings, rooms, chat_cluster)
    gc_pauses.install()
    app.middlewares.append(refusal_middleware)  # innermost: every edge's refusal as its JSON answer
    return app
