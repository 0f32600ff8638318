"""Builds the interaction side of the app: Socket.IO server, bus and feature modules."""

from __future__ import annotations

from typing import Any, Optional

from aiohttp import web

from core.settings import Settings

from .bus import ClusterBus
from .danmaku import DanmakuService
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
        self.server = InteractionServer(settings.server.redis_url, cors_origins=settings.server.cors_origin)
        self.bus = ClusterBus(redis)
        self.moderation = Moderation(self.server, self.bus, tuple(settings.interaction.blocked_words))
        self.danmaku = DanmakuService(self.server, self.moderation, settings.interaction)
        self.likes = LikeService(self.server, redis)
        self.polls = PollService(self.server)
        self.hands = HandService(self.server)
        self.presence = PresenceService(self.server)
        self.questions = QuestionService(self.server, self.moderation)
        self.tips = TipService(self.server, redis)

    async def start(self) -> None:
        await self.bus.start()
        self.questions.attach(self.server.rooms)  # refunds at broadcast end

    async def close(self) -> None:
        await self.server.close()
        await self.bus.close()


INTERACTION = web.AppKey("interaction", Interaction)


def build_interaction(app: web.Application, settings: Settings, redis: Optional[Any]) -> Interaction:
    interaction = Interaction(settings, redis)
    interaction.server.attach(app)
    app[INTERACTION] = interaction
    setup_routes(app, interaction.danmaku, interaction.questions, interaction.polls)
    return interaction
