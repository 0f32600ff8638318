"""Trickle ICE on WHIP/WHEP sessions (RFC 9725 section 4.3.1): a client sends its offer
before it has all its candidates and PATCHes the rest; bad PATCHes change nothing."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest
from aiortc import RTCSessionDescription

from signalling.whip import ROOMS
from tests.support.live_server import KEY
from tests.support.waiting import wait_for
from tests.support.peers import Publisher, Viewer
from tests.support.mdns import mdns_never_answers  # noqa: F401  (fixture)
from tests.support.whip_offers import post

pytestmark = pytest.mark.inprocess

TRICKLE = "application/trickle-ice-sdpfrag"


async def offer_without_candidates(pc) -> tuple[str, str, list[str]]:
    """``pc``'s offer, the same without its candidates and end-of-candidates, and the
    candidate lines taken out."""
    await pc.setLocalDescription(await pc.createOffer())
    full = pc.localDescription.sdp
    lines = full.split("\r\n")
    found = [line for line in lines if line.startswith("a=candidate:")]
    kept = [line for line in lines if not line.startswith(("a=candidate:", "a=end-of-candidates"))]
    assert found
    return full, "\r\n".join(kept), found


def fragment(offer: str, candidates: list[str], end: bool = False, mid: str | None = None,
             ufrag: str | None = None) -> str:
    """An RFC 8840 fragment for the offer's first media section, as a browser sends it."""
    ufrag = ufrag or re.search(r"a=ice-ufrag:(\S+)", offer).group(1)
    pwd = re.search(r"a=ice-pwd:(\S+)", offer).group(1)
    mline = re.search(r"^m=.*$", offer, re.M).group(0)
    mid = mid or re.search(r"a=mid:(\S+)", offer).group(1)
    lines = [f"a=ice-ufrag:{ufrag}", f"a=ice-pwd:{pwd}", mline, f"a=mid:{mid}", *candidates]
    if end:
        lines.append("a=end-of-candidates")
    return "\r\n".join(lines) + "\r\n"


async def patch(base: str, location: str, body, etag: str | None, content_type: str = TRICKLE,
                **headers):
    headers["Content-Type"] = content_type
    if etag is not None:
        headers["If-Match"] = etag
    async with aiohttp.ClientSession() as http:
        async with http.patch(base + location, data=body, headers=headers) as r:
            payload = await r.json() if r.content_type == "application/json" else await r.text()
            return r.status, payload, r.headers


def remote_candidates(session) -> list:
    """What the session's ICE agent has from the client (aiortc's public API)."""
    transport = session.pc.getTransceivers()[0].receiver.transport.transport
    return transport.getRemoteCandidates()


@pytest.fixture
async def room(server):
    """Room ``demo``, live: an aiortc publisher is sending media."""
    base, app = server
    publisher = Publisher(base)
    try:
        assert await publisher.publish("demo", KEY) == 201
        room = app[ROOMS].get("demo")
        await wait_for(lambda: room.publisher.last_media() is not None, timeout=10)
        yield room
    finally:
        await publisher.close()


@pytest.fixture
async def live(server, room):
    """A live room and a viewer whose offer went without candidates."""
    base, app = server
    viewer = Viewer(base)
    try:
        full, offer, candidates = await offer_without_candidates(viewer.pc)
        status, answer, headers = await post(base, "/whep/demo", offer)
        assert status == 201, answer
        session = room.session(headers["Location"].rsplit("/", 1)[1])
        yield base, app, viewer, session, headers, full, candidates, answer
    finally:
        await viewer.close()


async def test_a_viewer_trickles_its_candidates_and_plays(live):
    base, app, viewer, session, headers, offer, candidates, answer = live
    assert remote_candidates(session) == []  # the offer had none
    async with aiohttp.ClientSession() as http:
        async with http.options(base + headers["Location"]) as r:
            assert r.status == 204 and r.headers["Accept-Patch"] == TRICKLE
    status, body, reply = await patch(base, headers["Location"], fragment(offer, candidates, end=True),
                                      headers["ETag"])
    assert status == 204 and body == "" and "ETag" not in reply
    await wait_for(lambda: len(remote_candidates(session)) == len(candidates), timeout=5)
    ports = sorted(c.port for c in remote_candidates(session))
    assert ports == sorted(int(line.split()[5]) for line in candidates)
    await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    await wait_for(lambda: len(viewer.numbers) >= 10, timeout=15)
    # after end-of-candidates, more candidates are accepted and ignored (RFC 8838)
    extra = "a=candidate:7 1 udp 2122260223 192.0.2.77 40000 typ host"
    status, _, _ = await patch(base, headers["Location"], fragment(offer, [extra]), headers["ETag"])
    assert status == 204
    await asyncio.sleep(0.1)
    assert "192.0.2.77" not in [c.ip for c in remote_candidates(session)]


@pytest.mark.parametrize("case,status,code", [
    ("content type", 415, "unsupported_media_type"),
    ("stale etag", 412, "etag_mismatch"),
    ("ice restart", 422, "ice_restart_not_supported"),
    ("other ufrag", 422, "ice_restart_not_supported"),
    ("bad candidate", 400, "bad_candidate"),
    ("unknown mid", 400, "bad_fragment"),
    ("candidate before m-line", 400, "bad_fragment"),
    ("nothing to apply", 400, "bad_fragment"),
    ("not utf-8", 400, "bad_fragment"),
    ("too large", 413, "fragment_too_large"),
    ("unknown session", 404, "session_not_found"),
])
async def test_bad_patches_are_refused_and_change_nothing(live, settings, case, status, code):
    base, app, viewer, session, headers, offer, candidates, _ = live
    location, etag = headers["Location"], headers["ETag"]
    body, content_type = fragment(offer, candidates, end=True), TRICKLE
    if case == "content type":
        content_type = "application/sdp"
    elif case == "stale etag":
        etag = '"another-session"'
    elif case == "ice restart":
        etag = "*"
    elif case == "other ufrag":
        body = fragment(offer, candidates, ufrag="Zz9x")
    elif case == "bad candidate":
        body = fragment(offer, [candidates[0], "a=candidate:1 1 udp 2122260223 192.0.2.1 notaport typ host"])
    elif case == "unknown mid":
        body = fragment(offer, candidates, mid="7")
    elif case == "candidate before m-line":
        body = candidates[0] + "\r\n" + fragment(offer, [])
    elif case == "nothing to apply":
        body = fragment(offer, [])
    elif case == "not utf-8":
        body = b"a=candidate:\xff\xfe"
    elif case == "too large":
        body = fragment(offer, candidates) + "a=x-padding:" + "x" * settings.media.max_sdp_bytes + "\r\n"
    elif case == "unknown session":
        location = location.rsplit("/", 1)[0] + "/nosuchsession"
    got, reply, _ = await patch(base, location, body, etag, content_type=content_type)
    assert (got, reply["error"]["code"]) == (status, code), reply
    assert reply["error"]["message"]
    await asyncio.sleep(0.05)
    assert remote_candidates(session) == [] and session.remote_candidates.added == 0
    assert not session.remote_candidates.ended


async def test_a_publisher_trickles_with_its_key(server):
    """WHIP: the PATCH needs the stream key, as the DELETE does."""
    base, app = server
    publisher = Publisher(base)
    try:
        full, offer, candidates = await offer_without_candidates(publisher.pc)
        status, answer, headers = await post(base, "/whip/demo", offer, token=KEY)
        assert status == 201, answer
        session = app[ROOMS].get("demo").publisher
        body = fragment(full, candidates, end=True)
        for token, expected in ((None, 401), ("wrong-key-000", 403)):
            auth = {"Authorization": f"Bearer {token}"} if token else {}
            got, reply, _ = await patch(base, headers["Location"], body, headers["ETag"], **auth)
            assert got == expected, reply
        assert remote_candidates(session) == []
        got, _, _ = await patch(base, headers["Location"], body, headers["ETag"],
                                Authorization=f"Bearer {KEY}")
        assert got == 204
        await wait_for(lambda: len(remote_candidates(session)) == len(candidates), timeout=5)
        await publisher.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await wait_for(lambda: session.last_media() is not None, timeout=15)
    finally:
        await publisher.close()


async def test_trickled_mdns_candidates_do_not_hold_the_patch(live, mdns_never_answers):  # noqa: F811
    """A browser's trickled candidates are mDNS names: the 204 does not wait for them to
    resolve, and end-of-candidates is passed on only after them."""
    base, app, viewer, session, headers, offer, candidates, _ = live
    name = "0b7a4a0e-5b3a-4a8e-9a38-2d1c1f0c9a11.local"
    mdns = f"a=candidate:9 1 udp 2113937151 {name} 50999 typ host generation 0"
    body = fragment(offer, [mdns, *candidates], end=True)
    got, _, _ = await asyncio.wait_for(patch(base, headers["Location"], body, headers["ETag"]), timeout=5)
    assert got == 204
    await wait_for(lambda: mdns_never_answers == [name], timeout=5)
    await wait_for(lambda: len(remote_candidates(session)) == len(candidates), timeout=5)
    connection = session.pc.getTransceivers()[0].receiver.transport.transport._connection
    assert not connection._remote_candidates_end  # still waiting for the mDNS name


@pytest.mark.slow
async def test_the_watch_page_offers_at_once_and_trickles(server, room, browser):
    """Chromium's watch page: the offer goes before ICE gathering completes, the rest is
    PATCHed (204) up to end-of-candidates, the server's ICE agent gets the trickled
    candidates, and the viewer gets a picture."""
    base, app = server
    context = await browser.new_context()
    try:
        page = await context.new_page()
        sent: list[tuple[str, str]] = []
        answered: list[tuple[str, int]] = []
        page.on("request", lambda r: sent.append((r.method, r.post_data or "")) if "/whep/" in r.url else None)
        page.on("response", lambda r: answered.append((r.request.method, r.status)) if "/whep/" in r.url else None)
        await page.goto(f"{base}/static/watch.html?room=demo&autoplay=1")
        await page.wait_for_function(
            "() => { const v = document.getElementById('video'); return v.videoWidth > 0 && v.currentTime > 0; }",
            timeout=15_000)
        await wait_for(lambda: any(m == "PATCH" and "a=end-of-candidates" in body for m, body in sent), timeout=10)
        await wait_for(lambda: sum(1 for m, _ in answered if m == "PATCH") == sum(1 for m, _ in sent if m == "PATCH"))
        offer = next(body for m, body in sent if m == "POST")
        patched = [line for m, body in sent if m == "PATCH" for line in body.splitlines()
                   if line.startswith("a=candidate:")]
        assert "a=end-of-candidates" not in offer and patched
        assert not set(patched) & set(offer.splitlines())  # each candidate once
        assert {status for m, status in answered if m == "PATCH"} == {204}
        (session,) = room.subscribers.values()
        await wait_for(lambda: session.remote_candidates.ended and remote_candidates(session), timeout=5)
    finally:
        await context.close()
