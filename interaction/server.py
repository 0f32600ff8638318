"""``InteractionServer``: the Socket.IO side of a room (python-socketio on aiohttp).

One Socket.IO room per Stagepass room (``room:<slug>``) plus one for its moderators
(``mods:<slug>``). A client connects with ``auth={"room": slug, "token": <view or
publish access token>}``, checked by the app's one door (``chat`` action); a refused
connection carries the refusal's ``{"code", "message"}`` the page can show. Every client
event goes through ``handler``: the payload is validated by the feature module, which
raises ``core.access.Refusal`` to refuse, and the ack is ``{"ok": true, ...}`` or
``{"ok": false, "error": {"code", "message"}}`` with nothing changed. Feature modules
(danmaku, questions, polls, moderation...) register their events with ``on``; an event
that needs the moderator's right says so there.

With a shared ``Cluster`` (Redis) the server uses ``ClusterManager``: emits reach clients
on every process and node, and ``disconnect`` of a banned user's sockets works across
them. Either way room emits go out through ``broadcast.FastEmit`` (encoded once, no task
per recipient), and WebSocket compression is off unless ``websocket_compression``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional

import socketio
from aiohttp import web

from core.access import Grant, Refusal, Target, token_required
from core.behaviour import NO_EVENTS, BehaviourSink
from core.cluster import Cluster, LocalCluster
from core.tasks import TaskOwner
from mediaserver.live.room import RoomRegistry
from paywall.seats import REVOKED
from paywall.service import Paywall
from signalling.admission import Admission

from .broadcast import StagepassSocketIO, client_manager
from .socketio_manager import ClusterManager

__all__ = ["Client", "InteractionServer"]

log = logging.getLogger("stagepass.interaction")


@dataclass
class Client:
    """One connected socket: who it is and where."""

    sid: str
    user_id: int
    name: str
    room: str
    room_id: int
    creator_id: int
    moderator: bool
    connected_at: float = field(default_factory=time.monotonic)
    tasks: Optional[TaskOwner] = None

    @property
    def creator(self) -> bool:
        return self.user_id == self.creator_id

    def public(self) -> dict:
        return {"id": self.user_id, "name": self.name}


class _ChatSeat:
    """Adapts a socket to ``Admission``: a seat holder that can be closed."""

    def __init__(self, server: "InteractionServer", client: Client, ends_in: Optional[float] = None) -> None:
        self.id = f"chat-{client.sid}"
        #: a free preview's end (monotonic), so its kick says ``preview_over``, not ``seat_taken``
        self.ends_at = time.monotonic() + ends_in if ends_in is not None else None
        self._server = server
        self._client = client
        self._listeners: list[Callable[[], Awaitable[None]]] = []
        self.log = logging.LoggerAdapter(log, {"room": client.room, "session": client.sid[:8]})
        self.tasks = client.tasks

    def on_close(self, listener: Callable[[], Awaitable[None]]) -> None:
        self._listeners.append(listener)

    async def closed(self) -> None:
        for listener in self._listeners:
            await listener()

    async def evict(self, reason: str) -> None:
        if reason == REVOKED:
            await self._server.kick(self._client.sid, "refunded",
                                    "your ticket or pass for this room ended (refunded, or a subscription that lapsed)")
        else:
            await self.close()

    async def close(self) -> None:
        if self.ends_at is not None and time.monotonic() >= self.ends_at - 0.5:
            await self._server.kick(self._client.sid, "preview_over", "your free preview is over")
        else:
            await self._server.kick(self._client.sid, "seat_taken", "your ticket is in use on another device")


Handler = Callable[[Client, Any], Awaitable[dict]]
#: client events that are also behaviour events (engagement analytics), by kind
ENGAGEMENT = {"danmaku:send": "danmaku", "like": "like", "question:ask": "question", "tip:announce": "tip"}


class InteractionServer:
    def __init__(self, cluster: Optional[Cluster] = None, cors_origins: Any = "*",
                 websocket_compression: bool = False) -> None:
        self.cluster = cluster or LocalCluster()
        self.manager = client_manager(self.cluster)
        self.sio = StagepassSocketIO(async_mode="aiohttp", client_manager=self.manager,
                                     cors_allowed_origins=cors_origins, logger=False, engineio_logger=False,
                                     websocket_compression=websocket_compression)
        # bound at startup (``bind``), when the database and rooms exist
        self.paywall: Paywall = None  # type: ignore[assignment]
        self.rooms: RoomRegistry = None  # type: ignore[assignment]
        self.admission: Admission = None  # type: ignore[assignment]
        self.clients: dict[str, Client] = {}
        self.tasks = TaskOwner(log)
        self._seats: dict[str, _ChatSeat] = {}
        self.moderation: Any = None  # set by ``Moderation``: checks bans and moderators
        #: where engagement (danmaku, likes, questions, tips) is reported; set by the app's assembly
        self.events: BehaviourSink = NO_EVENTS
        self._connect_hooks: list[Callable[[Client], Awaitable[None]]] = []
        self._disconnect_hooks: list[Callable[[Client], Awaitable[None]]] = []
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)

    def attach(self, app: web.Application) -> None:
        self.sio.attach(app, socketio_path="socket.io")

    def bind(self, paywall: Paywall, rooms: RoomRegistry, admission: Admission) -> None:
        self.paywall, self.rooms, self.admission = paywall, rooms, admission

    @property
    def db(self):
        return self.paywall.db

    # ------------------------------------------------------------ registration
    def on(self, event: str, handler: Handler, moderator: bool = False) -> None:
        """Register a client event; ``moderator`` events are refused to everyone else."""

        async def dispatch(sid: str, data: Any = None) -> dict:
            client = self.clients.get(sid)
            if client is None:
                return Refusal(401, "not_connected", "connect to a room first").ack()
            if moderator and not client.moderator:
                return Refusal(403, "forbidden", "only the creator and moderators can do this").ack()
            try:
                result = await handler(client, data)
            except Refusal as refusal:
                return refusal.ack()
            except Exception:
                log.exception("event %s failed for user %d in room %s", event, client.user_id, client.room)
                return Refusal(500, "internal_error", "something went wrong; nothing was changed").ack()
            if event in ENGAGEMENT:
                self._engaged(ENGAGEMENT[event], client, data, result or {})
            return {"ok": True, **(result or {})}

        self.sio.on(event, dispatch)

    def _engaged(self, kind: str, client: Client, data: Any, result: dict) -> None:
        broadcast, t_ms = self.t_ms(client.room)
        value = None
        if kind == "tip":
            value = (result.get("tip") or {}).get("amount")
        elif kind == "like":
            value = data["count"]  # validated by the like handler
        self.events.record(kind, user_id=client.user_id, room_id=client.room_id, broadcast=broadcast or None,
                           t_ms=t_ms if broadcast else None, value=value)

    def on_connect(self, hook: Callable[[Client], Awaitable[None]]) -> None:
        self._connect_hooks.append(hook)

    def on_disconnect(self, hook: Callable[[Client], Awaitable[None]]) -> None:
        self._disconnect_hooks.append(hook)

    # ------------------------------------------------------------ helpers
    @staticmethod
    def channel(room: str) -> str:
        return f"room:{room}"

    @staticmethod
    def mod_channel(room: str) -> str:
        return f"mods:{room}"

    async def emit_room(self, room: str, event: str, data: Any) -> None:
        await self.sio.emit(event, data, room=self.channel(room))

    def write_room(self, room: str, event: str, data_json: str) -> None:
        """``event`` with its data already JSON to this process's sockets in the room only
        (danmaku frames: every process makes its own, ``interaction.room_feed``)."""
        self.manager.write_local("/", self.channel(room), event, data_json)

    def has_local(self, room: str) -> bool:
        """Whether a socket of this process is in the room."""
        return bool(self.manager.rooms.get("/", {}).get(self.channel(room)))

    async def emit_mods(self, room: str, event: str, data: Any) -> None:
        await self.sio.emit(event, data, room=self.mod_channel(room))

    def t_ms(self, room: str) -> tuple[str, int]:
        """(broadcast id, milliseconds on its media clock); ("", 0) while not live."""
        media = self.rooms.get(room)
        if media is None or media.broadcast is None:
            return "", 0
        return media.broadcast.id, media.broadcast.t_ms()

    async def kick(self, sid: str, code: str, message: str) -> None:
        """Tell a socket why, then disconnect it (works for sockets on other nodes too)."""
        await self.sio.emit("kicked", {"code": code, "message": message}, to=sid)
        await self.sio.disconnect(sid)

    # ------------------------------------------------------------ connect
    async def _connect(self, sid: str, environ: dict, auth: Any = None) -> None:
        try:
            await self._admit(sid, auth)
        except Refusal as refusal:
            raise socketio.exceptions.ConnectionRefusedError(refusal.message, refusal.error()) from None

    async def _admit(self, sid: str, auth: Any) -> None:
        """Register a socket the door lets in; ``Refusal`` otherwise (the client's
        ``connect_error`` gets ``{"message", "data": {"code", "message"}}``)."""
        if not isinstance(auth, dict) or not isinstance(auth.get("room"), str) or not isinstance(auth.get("token"), str):
            raise token_required("chat")
        slug, token = auth["room"], auth["token"]
        grant = await self.paywall.access.authorize(token or None, "chat", Target(slug))
        room = await self.paywall.catalog.get(slug)
        if room is None:
            raise Refusal(404, "room_not_found", f"no room named {slug!r}")
        user = await self.paywall.accounts.get(grant.user_id) if grant.user_id is not None else None
        if user is None:
            raise Refusal(403, "unknown_user", "the token's user does not exist")
        moderation = self.moderation
        if moderation is not None and await moderation.is_banned(room.id, user.id):
            raise Refusal(403, "banned", "you are banned from this room")
        moderator = (user.id == room.creator_id or user.role == "admin"
                     or (moderation is not None and await moderation.is_moderator(room.id, user.id)))
        client = Client(sid=sid, user_id=user.id, name=user.display_name, room=slug, room_id=room.id,
                        creator_id=room.creator_id, moderator=moderator, tasks=TaskOwner(log))
        self.clients[sid] = client
        await self.sio.enter_room(sid, self.channel(slug))
        if moderator:
            await self.sio.enter_room(sid, self.mod_channel(slug))
        if grant.seat_key is not None:
            seat = self._seats[sid] = _ChatSeat(self, client, grant.ends_in)
            try:
                await self.admission.admit(
                    Grant(user_id=user.id, seat_key="chat:" + grant.seat_key, seat_limit=grant.seat_limit,
                          ends_in=grant.ends_in), seat)
            except Exception as exc:  # the seats' store (Redis) is down: refuse now, as WHEP's 503
                log.warning("user %d refused from chat of room %s: taking a seat failed (%s: %s)",
                            user.id, slug, type(exc).__name__, exc)
                await self._forget_refused(sid)
                raise Refusal(503, "unavailable", "could not take a seat for this ticket; try again") from None
        log.info("user %d joined chat of room %s%s", user.id, slug, " (moderator)" if moderator else "")
        for hook in self._connect_hooks:
            try:
                await hook(client)
            except Exception:
                log.exception("connect hook failed for user %d in room %s", user.id, slug)

    async def _forget_refused(self, sid: str) -> None:
        """Undo a connection refused after it was registered (Socket.IO takes the socket
        out of its rooms); its seat is given back as far as the store allows."""
        client = self.clients.pop(sid, None)
        seat = self._seats.pop(sid, None)
        if seat is not None:
            try:
                await seat.closed()
            except Exception as exc:
                log.warning("giving back the chat seat of a refused connection failed (%s)", exc)
        if client is not None and client.tasks is not None:
            await client.tasks.close()

    async def _disconnect(self, sid: str, *args: Any) -> None:
        client = self.clients.pop(sid, None)
        if client is None:
            return
        seat = self._seats.pop(sid, None)
        if seat is not None:
            await seat.closed()
        if client.tasks is not None:
            await client.tasks.close()
        for hook in self._disconnect_hooks:
            try:
                await hook(client)
            except Exception:
                log.exception("disconnect hook failed for user %d in room %s", client.user_id, client.room)

    async def set_moderator(self, room: str, user_id: int, moderator: bool) -> None:
        """Grant or withdraw moderator rights of this node's live sockets of a user."""
        for c in self.clients_in(room):
            if c.user_id == user_id and not c.creator:
                c.moderator = moderator
                if moderator:
                    await self.sio.enter_room(c.sid, self.mod_channel(room))
                else:
                    await self.sio.leave_room(c.sid, self.mod_channel(room))

    def clients_in(self, room: str) -> list[Client]:
        return [c for c in self.clients.values() if c.room == room]

    async def close(self) -> None:
        for sid in list(self.clients):
            await self.sio.disconnect(sid, ignore_queue=True)
        await self.tasks.close()
        if isinstance(self.sio.manager, ClusterManager):
            await self.sio.manager.close()

