"""Free previews: a viewer without a ticket may watch a paid room for ``preview_seconds``,
once; the server ends the session when the window closes. Real aiortc viewers, on SQLite
and PostgreSQL (the preview's start time comes back naive from one, aware from the other).
"""

from __future__ import annotations

import asyncio
import math
import time

import aiohttp
import jwt
import pytest
from aiortc import RTCSessionDescription

from core.access import Target
from signalling.whip import ROOMS
from tests.support.waiting import wait_for
from tests.support.paywall_fixtures import Api, buy, paid_room
from tests.support.peers import Viewer

pytestmark = pytest.mark.inprocess

PREVIEW = 2


class PreparedViewer(Viewer):
    """A WHEP viewer whose offer (ICE gathering included) is ready before it asks for a
    token, so a short preview window is not spent creating the offer."""

    async def prepare(self) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())

    async def play_with(self, room: str, token: str) -> int:
        if self.pc.localDescription is None:
            await self.prepare()
        self.token = token
        headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{self.base_url}/whep/{room}", data=self.pc.localDescription.sdp,
                                 headers=headers) as r:
                self.status = r.status
                body = await r.text()
        if r.status == 201:
            self.location = r.headers["Location"]
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        else:
            self.error = body
        return self.status

    @property
    def session_id(self) -> str:
        return self.location.rsplit("/", 1)[1]


def subscribers(app, room: str = "maths") -> set[str]:
    r = app[ROOMS].get(room)
    return set(r.subscribers) if r is not None else set()


async def mint(viewer: Api, room: str = "maths") -> tuple[int, dict]:
    return await viewer.post(f"/api/rooms/{room}/tokens", {"scope": "view"})


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


@pytest.mark.slow
async def test_free_preview_once_then_ticket(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, "maths", preview_seconds=PREVIEW)
    await paid_room(creator, "physics", preview_seconds=0)
    viewer = await Api.sign_up(base, "viewer")
    peers: list[PreparedViewer] = []

    def new_viewer() -> PreparedViewer:
        peers.append(PreparedViewer(base))
        return peers[-1]

    try:
        # a room without a preview needs a ticket
        status, body = await mint(viewer, "physics")
        assert (status, body["error"]["code"]) == (402, "ticket_required")

        first = new_viewer()
        await first.prepare()
        minted_at = time.time()
        status, minted = await mint(viewer)
        answered_at = time.time()
        assert status == 201, minted
        until = minted["preview_until"]
        # whole seconds, rounded up from the moment the server started the preview
        assert isinstance(until, int) and minted_at < until <= math.ceil(answered_at + PREVIEW)
        assert claims(minted["token"])["preview_until"] == until
        # asking again during the window does not start a new one
        status, again = await mint(viewer)
        assert status == 201 and again["preview_until"] == until

        assert await first.play_with("maths", minted["token"]) == 201, first.error
        assert subscribers(app) == {first.session_id}
        await wait_for(lambda: not subscribers(app), timeout=until - time.time() + 6)
        ended = time.time()
        assert ended >= until - 0.5, f"the preview was cut {until - ended:.1f} s early"

        # the window is over: no new token, and the old token no longer opens the room.
        # (preview_until is the window's end rounded down to a second, while minting checks
        # the exact end: wait past both; see test_a_token_minted_with_201_is_usable)
        await asyncio.sleep(max(0.0, until + 1.1 - time.time()))
        status, body = await mint(viewer)
        assert (status, body["error"]["code"]) == (402, "preview_used")
        late = new_viewer()
        assert await late.play_with("maths", minted["token"]) == 403
        assert not subscribers(app)

        # with a ticket: a token without a preview window, and a session that stays
        await buy(viewer, "maths")
        status, minted = await mint(viewer)
        assert status == 201 and minted["preview_until"] is None
        assert "preview_until" not in claims(minted["token"])
        paid = new_viewer()
        assert await paid.play_with("maths", minted["token"]) == 201, paid.error
        await asyncio.sleep(PREVIEW + 1.5)
        assert subscribers(app) == {paid.session_id}

        # the ticket does not open the room without a preview
        status, body = await mint(viewer, "physics")
        assert (status, body["error"]["code"]) == (402, "ticket_required")
    finally:
        for p in peers:
            await p.close()


async def test_preview_windows_are_per_account_and_per_room(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, "maths", preview_seconds=60)
    await paid_room(creator, "physics", preview_seconds=60)
    alice = await Api.sign_up(base, "viewer")
    bob = await Api.sign_up(base, "viewer")
    status, a1 = await mint(alice)
    assert status == 201 and a1["preview_until"]
    status, b1 = await mint(bob)
    assert status == 201 and b1["preview_until"] >= a1["preview_until"]
    status, a2 = await mint(alice, "physics")
    assert status == 201 and a2["preview_until"] >= a1["preview_until"]
    # the creator and free rooms need no preview
    status, own = await mint(creator)
    assert status == 201 and own["preview_until"] is None


async def test_a_token_minted_with_201_is_usable(paywall_app):
    """At the end of the window, minting either refuses (402) or gives a token that works."""
    import datetime as dt

    from paywall.http import PAYWALL
    from paywall.models import PreviewUse

    base, app = paywall_app
    paywall = app[PAYWALL]
    creator = await Api.sign_up(base, "creator")
    room = await paid_room(creator, "maths", preview_seconds=PREVIEW)
    viewer = await Api.sign_up(base, "viewer")
    # a preview that ends 0.999 s into the current second, at least half a second from now
    while time.time() % 1 > 0.5:
        await asyncio.sleep(0.05)
    end = int(time.time()) + 0.999
    started = dt.datetime.fromtimestamp(end - PREVIEW, dt.timezone.utc)
    async with paywall.db() as s:
        s.add(PreviewUse(user_id=viewer.user["id"], room_id=room["room"]["id"], started_at=started))
        await s.commit()
    status, minted = await mint(viewer)
    if status == 402:
        assert minted["error"]["code"] == "preview_used"
        return
    assert status == 201
    assert minted["preview_until"] > time.time(), "a fresh token whose preview is already over"
    grant = await paywall.access.authorize(minted["token"], "view", Target("maths"))
    assert grant.ends_in and grant.ends_in > 0
