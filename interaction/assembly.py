"""Builds the interaction side of the app: Socket.IO server, bus and feature modules."""

from __future__ import annotations

from aiohttp import web

from core.cluster import Cluster
from core.settings import Settings

from .bus import ClusterBus
from .comments import CommentService
from .comments_http import setup_routes as setup_comment_routes
from .moderators_http import setup_routes as setup_moderator_routes
from .danmaku import DanmakuService
from .danmaku_cluster import danmaku_cluster
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

    def __init__(self, settings: Settings, cluster: Cluster) -> None:
        chat = settings.interaction
        self.server = InteractionServer(cluster, cors_origins=settings.server.cors_origin,
                                        websocket_compression=chat.websocket_compression)
        self.bus = ClusterBus(cluster)
        self.moderation = Moderation(self.server, self.bus, tuple(chat.blocked_words))
        self.danmaku = DanmakuService(self.server, self.moderation, chat, cluster=danmaku_cluster(
            cluster, chat.danmaku_user_rate, chat.danmaku_user_burst, chat.danmaku_room_rate))
        self.likes = LikeService(self.server, cluster)
        self.polls = PollService(self.server)
        self.presence = PresenceService(self.server, cluster)
        self.hands = HandService(self.server, cluster, self.bus, self.presence)
        self.questions = QuestionService(self.server, self.moderation)
        self.tips = TipService(self.server, cluster)
        self.comments = CommentService(self.moderation)

    async def start(self) -> None:
        await self.bus.start()
        await self.danmaku.start()
        self.questions.attach(self.server.rooms)  # refunds at broadcast end

    async def close(self) -> None:
        await self.server.close()
        await self.danmaku.close()
        await self.bus.close()


INTERACTION = web.AppKey("interaction", Interaction)


def build_interaction(app: web.Application, settings: Settings, cluster: Cluster) -> Interaction:
    interaction = Interaction(settings, cluster)
    interaction.server.attach(app)
    app[INTERACTION] = interaction
    setup_routes(app, interaction.danmaku, interaction.questions, interaction.polls)
    setup_comment_routes(app, interaction.comments)
    setup_moderator_routes(app, interaction.moderation)
    return interaction
