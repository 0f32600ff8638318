"""A paid room with media workers (``workers=2``; the control plane in the test's process,
its two workers as processes): the ticket holder's player lands on the worker that does
not host the room and plays through the pipe (its quality figures, asked of that worker,
reach the creator); the same ticket on a second device (placed
on the host) ends the first session in its worker (one device per ticket); a ban in the
creator's chat ends a buyer's player in its worker; a refund ends the second; the ledger balances."""

from __future__ import annotations

import json

import aiohttp
import pytest

from paywall.http import PAYWALL
from signalling.whip import ROOMS
from stagepass.app import create_app
from tests.support.waiting import wait_for
from tests.support.chat import Chat
from tests.support.paywall_fixtures import Api, buy, paid_room, paywall_settings, view_token
from tests.support.peers import Publisher, Viewer

pytestmark = [pytest.mark.slow, pytest.mark.inprocess, pytest.mark.e2e]

METRICS_TOKEN = "workers-metrics-token-0123"


async def forwarded(base: str) -> dict[str, float]:
    """``stagepass_forwarded_packets`` and ``stagepass_received_packets`` of video, from ``/metrics``,
    summed over the workers (each worker's series carries its ``worker`` label)."""
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}) as r:
            text = await r.text()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("stagepass_forwarded_packets_total{kind=\"video\",worker=",
                            "stagepass_received_packets_total{kind=\"video\",worker=")):
            name = line.split("{")[0]
            totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


async def test_a_ticket_across_two_workers_one_device_then_a_refund(aiohttp_server, tmp_path):
    app = create_app(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'paywall.db'}", workers=2,
                                      metrics_token=METRICS_TOKEN))
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, max_devices=1)
    viewer = await Api.sign_up(base, "viewer")
    order = await buy(viewer, "maths")
    peers: list = []
    try:
        status, minted = await creator.post("/api/rooms/maths/tokens", {"scope": "publish"})
        assert status == 201, minted
        publisher = Publisher(base)
        peers.append(publisher)
        assert await publisher.publish("maths", minted["token"]) == 201
        room = app[ROOMS].get("maths")
        await wait_for(lambda: room.live, timeout=15)
        host = room.host

        first = Viewer(base)
        peers.append(first)
        assert await first.post("/whep/maths", token=await view_token(viewer, "maths")) == 201
        await wait_for(lambda: len(first.numbers) >= 15, timeout=20)
        (session,) = room.subscribers.values()
        assert session.worker != host and session.user_id == viewer.user["id"]  # relayed through the pipe
        # the creator's view of its viewers: the quality figures come from the viewer's worker
        status, body = await creator.get("/api/rooms/maths/viewers")
        (seen,) = body["viewers"]
        assert status == 200 and seen["user_id"] == viewer.user["id"] and seen["video"]["packets_sent"] > 0, body
        await wait_for(lambda: room.fanouts.get("video") and room.fanouts["video"].stats.packets_out, timeout=5)
        counts = await forwarded(base)  # the workers' counters, as in one process
        assert counts["stagepass_forwarded_packets_total"] > 0 and counts["stagepass_received_packets_total"] > 0

        # the same ticket on a second device: placed on the host, it ends the first one in its worker
        second = Viewer(base)
        peers.append(second)
        assert await second.post("/whep/maths", token=await view_token(viewer, "maths")) == 201
        await wait_for(lambda: len(second.numbers) >= 15, timeout=20)
        (newer,) = await wait_for(lambda: len(room.subscribers) == 1 and list(room.subscribers.values()), timeout=10)
        assert newer.worker == host and newer.id != session.id
        await wait_for(lambda: session.id not in room.renditions and newer.id in room.renditions, timeout=5)

        # a ban in the creator's chat ends the banned buyer's player in its worker, and WHEP refuses it
        rowdy = await Api.sign_up(base, "viewer")
        await buy(rowdy, "maths")
        banned = Viewer(base)
        peers.append(banned)
        assert await banned.post("/whep/maths", token=await view_token(rowdy, "maths")) == 201
        await wait_for(lambda: len(room.subscribers) == 2, timeout=10)
        moderator = Chat()
        peers.append(moderator)
        assert await moderator.connect(base, "maths", minted["token"]), moderator.refused
        assert (await moderator.call("mod:ban", {"user_id": rowdy.user["id"]}))["ok"]
        await wait_for(lambda: list(room.subscribers) == [newer.id], timeout=10)
        again = Viewer(base)
        peers.append(again)
        assert await again.post("/whep/maths", token=await view_token(rowdy, "maths")) == 403
        assert json.loads(again.error)["error"]["code"] == "banned"

        # a refund ends the session in the worker; the creator goes on
        status, body = await creator.post(f"/api/orders/{order['id']}/refund")
        assert status == 200 and body["order"]["status"] == "refunded"
        await wait_for(lambda: not room.subscribers and not room.renditions, timeout=10)
        assert room.live
        admin = await Api.sign_up(base, "viewer")
        await app[PAYWALL].accounts.set_role(admin.user["email"], "admin")
        status, ledger = await admin.get("/api/admin/ledger")
        assert status == 200 and ledger["balanced"], ledger
    finally:
        for peer in reversed(peers):
            await peer.close()
