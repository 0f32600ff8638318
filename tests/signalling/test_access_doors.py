"""One door for access: the four doors (WHIP, WHEP, Socket.IO, replay files) refuse the
same credential with the same status and code, the one chosen where it was refused.

Real requests against a real server: aiohttp for WHIP/WHEP/replay with real aiortc SDP
offers, a python-socketio client for the chat, a packaged recording for the replay.
"""

from __future__ import annotations

import pytest
from yarl import URL

import aiohttp

from core.access import Grant, Refusal, StreamKeyAccess, Target
from paywall.http import PAYWALL
from signalling.whip import ROOMS
from stagepass.access_log import RedactingAccessLogger
from stagepass.app import create_app
from tests.support.chat import Chat
from tests.support.paywall_fixtures import Api, paid_room, paywall_settings
from tests.support.replays import install
from tests.support.whip_offers import make_offer

pytestmark = pytest.mark.inprocess


async def _http(method: str, url: str, token: str | None, **kwargs) -> tuple[int, dict]:
    headers = kwargs.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as http:
        async with http.request(method, URL(url, encoded=True), headers=headers, **kwargs) as r:
            body = await r.json() if r.content_type == "application/json" else {}
            return r.status, body


def _refusal(status: int, body: dict) -> tuple[int, str]:
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    return status, body["error"]["code"]


class Doors:
    """Knocks on the four doors of room ``maths`` and its replay with one credential."""

    def __init__(self, base: str, rec_id: str, publish_offer: str, view_offer: str) -> None:
        self.base, self.rec_id = base, rec_id
        self.publish_offer, self.view_offer = publish_offer, view_offer

    async def whip(self, token: str | None) -> tuple[int, str]:
        return _refusal(*await _http("POST", f"{self.base}/whip/maths", token, data=self.publish_offer,
                                     headers={"Content-Type": "application/sdp"}))

    async def whep(self, token: str | None) -> tuple[int, str]:
        return _refusal(*await _http("POST", f"{self.base}/whep/maths", token, data=self.view_offer,
                                     headers={"Content-Type": "application/sdp"}))

    async def chat(self, token: str | None) -> str:
        chat = Chat()
        try:
            assert not await chat.connect(self.base, "maths", token or "")
            data = chat.refused["data"]
            assert set(data) == {"code", "message"} and data["message"], data
            return data["code"]
        finally:
            await chat.close()

    async def replay(self, token: str | None) -> list[tuple[int, str]]:
        """The playlist and a segment, the token in the query and as a bearer header."""
        out = []
        for name in ("index.m3u8", "seg-00001.ts"):
            url = f"{self.base}/replay/{self.rec_id}/{name}"
            out.append(_refusal(*await _http("GET", url + (f"?token={token}" if token else ""), None)))
            out.append(_refusal(*await _http("GET", url, token)))
        return out

    async def all(self, token: str | None) -> dict:
        whip, whep, chat = await self.whip(token), await self.whep(token), await self.chat(token)
        replay = await self.replay(token)
        assert len(set(replay)) == 1, replay
        return {"whip": whip, "whep": whep, "chat": chat, "replay": replay[0]}


@pytest.fixture
async def doors(aiohttp_server, tmp_path, database_url, packaged):
    settings = paywall_settings(tmp_path, database_url)
    app = create_app(settings)
    srv = await aiohttp_server(app, access_log_class=RedactingAccessLogger)
    base = str(srv.make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    rec_id = install(packaged, settings.server.data_dir, "maths")
    viewer = await Api.sign_up(base)
    knock = Doors(base, rec_id, await make_offer(), await make_offer(direction="recvonly"))
    return knock, app, creator, viewer


async def test_the_same_refused_token_gets_the_same_code_at_all_four_doors(doors):
    knock, app, creator, viewer = doors
    tokens = app[PAYWALL].tokens
    rec = knock.rec_id

    # one expired token, whatever it was for: token_expired everywhere (WHIP, WHEP and the chat said "unauthorized")
    expired_view, _ = tokens.mint(viewer.user["id"], "view:maths", ttl=-5)
    got = await knock.all(expired_view)
    assert got == {"whip": (401, "token_expired"), "whep": (401, "token_expired"),
                   "chat": "token_expired", "replay": (401, "token_expired")}

    # each door's own scope, expired: the same
    own = {"whip": "publish:maths", "whep": "view:maths", "chat": "view:maths", "replay": f"replay:{rec}"}
    for door, scope in own.items():
        token, _ = tokens.mint(creator.user["id"], scope, ttl=-5)
        result = await getattr(knock, door)(token)
        refusals = result if door == "replay" else [result]
        for refusal in refusals:
            assert refusal in ((401, "token_expired"), "token_expired"), (door, refusal)

    # no credential, a forged one, one for another room: one code each, at every door
    assert await knock.all(None) == {"whip": (401, "token_required"), "whep": (401, "token_required"),
                                     "chat": "token_required", "replay": (401, "token_required")}
    forged = expired_view.rsplit(".", 1)[0] + ".AAAA"
    assert await knock.all(forged) == {"whip": (401, "invalid_token"), "whep": (401, "invalid_token"),
                                       "chat": "invalid_token", "replay": (401, "invalid_token")}
    elsewhere, _ = tokens.mint(creator.user["id"], "view:physics")
    assert await knock.all(elsewhere) == {"whip": (403, "wrong_scope"), "whep": (403, "wrong_scope"),
                                          "chat": "wrong_scope", "replay": (403, "wrong_scope")}

    # a valid view token of a viewer without a ticket: the live doors say why, in one word
    no_ticket, _ = tokens.mint(viewer.user["id"], "view:maths")
    assert await knock.whep(no_ticket) == (403, "ticket_required")
    assert await knock.chat(no_ticket) == "ticket_required"
    # nothing was started by any refusal
    room = app[ROOMS].get("maths")
    assert room is None or (room.publisher is None and not room.subscribers)


async def test_without_the_paywall_the_stream_key_door_refuses_the_same_way(server):
    """``StreamKeyAccess`` (no paywall) is the same ``Door``: codes of the same vocabulary."""
    base, app = server
    offer = await make_offer()
    assert _refusal(*await _http("POST", f"{base}/whip/demo", None, data=offer,
                                 headers={"Content-Type": "application/sdp"})) == (401, "token_required")
    assert _refusal(*await _http("POST", f"{base}/whip/demo", "not-the-key", data=offer,
                                 headers={"Content-Type": "application/sdp"})) == (403, "wrong_stream_key")
    door = StreamKeyAccess({"demo": "k" * 12})
    assert await door.authorize(None, "view", Target("demo")) == Grant()
    assert await door.authorize("k" * 12, "publish", Target("demo")) == Grant()
    for token, action, room, expected in [
        (None, "publish", "demo", (401, "token_required")),
        ("x", "publish", "demo", (403, "wrong_stream_key")),
        ("k" * 12, "publish", "nowhere", (404, "room_not_found")),
        ("k" * 12, "replay", "demo", (404, "not_found")),
    ]:
        with pytest.raises(Refusal) as refused:
            await door.authorize(token, action, Target(room))  # type: ignore[arg-type]
        assert (refused.value.status, refused.value.code) == expected
