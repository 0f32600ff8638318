"""Redis going down under a node (``REDIS_URL``): a ticketed chat connection is refused at
once with ``unavailable``, as WHEP answers 503, instead of leaving the client waiting
for its timeout; once Redis is back, it connects. Redis is the machine's real one behind a
loopback proxy the test cuts (``tests/support/tcp_proxy.py``), so nobody else's Redis stops."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from interaction.assembly import INTERACTION
from stagepass.app import create_app
from signalling.whip import ADMISSION
from tests.support.chat import Chat
from tests.support.paywall_fixtures import Api, buy, paid_room, paywall_settings, view_token
from tests.support.peers import Viewer
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.inprocess

REDIS_DB = 15  # this file's own database number


@pytest.fixture
async def redis_behind_a_proxy():
    redis = Redis.from_url(f"redis://127.0.0.1:6379/{REDIS_DB}")
    await redis.flushdb()
    proxy = await TcpProxy("127.0.0.1", 6379).start()
    try:
        yield proxy
    finally:
        await proxy.close()
        await redis.flushdb()
        await redis.aclose()


class TokenViewer(Viewer):
    async def play_with(self, room: str, token: str) -> int:
        return await self.post(f"/whep/{room}", token=token)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_ticketed_chat_is_refused_at_once_while_redis_is_down(aiohttp_server, tmp_path, database_url,
                                                                     redis_behind_a_proxy):
    proxy = redis_behind_a_proxy
    settings = paywall_settings(tmp_path, database_url, redis_url=f"redis://127.0.0.1:{proxy.port}/{REDIS_DB}")
    app = create_app(settings)
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    viewer = await Api.sign_up(base)
    await buy(viewer, "maths")
    server = app[INTERACTION].server

    chat = Chat()
    assert await chat.connect(base, "maths", await view_token(viewer, "maths")), chat.refused
    await chat.close()

    await proxy.close()  # Redis is down
    token = await view_token(viewer, "maths")  # the paywall does not need Redis
    refused = Chat()
    assert not await refused.connect(base, "maths", token)
    assert refused.refused is not None, "the connection was not refused: the client timed out"
    assert refused.refused["data"]["code"] == "unavailable", refused.refused
    # nothing left behind for the refused socket: no client, no seat
    assert [c for c in server.clients.values() if c.user_id == viewer.user["id"]] == []
    assert app[ADMISSION]._sessions == {}
    # the player is refused the same way (503 unavailable)
    player = TokenViewer(base)
    try:
        assert await player.play_with("maths", token) == 503
    finally:
        await player.close()

    await proxy.start()  # Redis is back, on the same address
    back = Chat()
    try:
        assert await back.connect(base, "maths", await view_token(viewer, "maths")), back.refused
    finally:
        await back.close()
