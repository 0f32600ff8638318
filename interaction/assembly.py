"""Builds the interaction side of the app: Socket.IO server, bus and feature modules."""

from __future__ import annotations

from typing import Any, Optional

from aiohttp import web

from core.settings import Settings

from .bus import ClusterBus
from .danmaku import DanmakuService
from .danmaku_cluster import LocalDanmakuCluster, RedisDanmakuCluster, channel_name
from .hands import HandService
from .http import setup_routes
from .likes import LikeService
from .moderation import Moderation
from .polls import PollService
from .presence import PresenceService
from .questions import QuestionService
from .server import InteractionServer
from .tips import TipService

__all__ = ["INTERACTION", "Interaction", "build_interaction"]


class Interaction:
    """The interaction features of one node, reachable from handlers and tests."""

    def __init__(self, settings: Settings, redis: Optional[Any]) -> None:
        server, chat = settings.server, settings.interaction
        self.server = InteractionServer(server.redis_url, cors_origins=server.cors_origin,
                                        websocket_compression=chat.websocket_compression)
        self.bus = ClusterBus(redis, channel_name(server.redis_url, "interaction"))
        self.moderation = Moderation(self.server, self.bus, tuple(chat.blocked_words))
        limits = (chat.danmaku_user_rate, chat.danmaku_user_burst, chat.danmaku_room_rate)
        self.danmaku = DanmakuService(
            self.server, self.moderation, chat,
            cluster=RedisDanmakuCluster(redis, *limits) if redis is not None else LocalDanmakuCluster(*limits))
        self.likes = LikeService(self.server, redis)
        self.polls = PollService(self.server)
        self.hands = HandService(self.server)
        self.presence = PresenceService(self.server, redis=redis)
        self.questions = QuestionService(self.server, self.moderation)
        self.tips = TipService(self.server, redis)

    async def start(self) -> None:
        await self.bus.start()
        await self.danmaku.start()
        self.presence.start()
        self.questions.attach(self.server.rooms)  # refunds at broadcast end

    async def close(self) -> None:
        await self.server.close()
        await self.danmaku.close()
        await self.bus.close()


INTERACTION = web.AppKey("interaction", Interaction)


def build_interaction(app: web.Application, settings: Settings, redis: Optional[Any]) -> Interaction:
    interaction = Interaction(settings, redis)
    interaction.server.attach(app)
    app[INTERACTION] = interaction
    setup_routes(app, interaction.danmaku, interaction.questions, interaction.polls)
    return interaction
