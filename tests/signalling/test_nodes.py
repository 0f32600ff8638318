"""Three real ``stagepass serve`` nodes on loopback sharing one Redis database and one
PostgreSQL database, and a paid room (issue 12's test).

The creator publishes on A; ticket holders' aiortc viewers on B and C (edges pulling the
room from A over WHEP with relay tokens, once per node) read every frame number, the same
live picture; publishing on B is refused while A is live, over WHIP (409) and from an RTMP
encoder; ``/api/live`` counts every node's viewers on every node. A ban issued in the
creator's chat on C ends the banned buyer's players on A and B (and C refuses the next one); a refund made on C ends the
refunded buyer's players on A and B; the other viewers play on. B is killed (SIGKILL):
its viewer plays again from C, and B's viewers leave the count once its heartbeats stop.
B restarts, A (the origin) is killed and the creator reconnects on B: C pulls from B and
its viewers resume; the last viewer leaving C lets go of B."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest

from tests.support.chat import Chat
from tests.support.frames import frames_grow, get_json, in_order, resumed_from, until
from tests.support.paywall_fixtures import Api, buy, flushed_redis, fresh_postgres, paid_room, view_token
from tests.support.peers import Publisher, Viewer
from tests.support.rtmp_encoder import FfmpegRtmpPublisher, have_ffmpeg
from tests.support.server_process import free_port, start_server, stop

REDIS_DB = 4  # this file's own database number
SECRET = "n" * 40

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def node_flags(database_url: str, rtmp_port: int = 0) -> list[str]:
    return ["--redis-url", f"redis://127.0.0.1:6379/{REDIS_DB}", "--database-url", database_url,
            "--secret", SECRET, "--node-heartbeat-seconds", "0.3", "--recordings", "off", "--log-level", "WARNING",
            "--rtmp-port", str(rtmp_port)]


async def live_viewers(base: str) -> dict[str, int]:
    return {r["room"]: r["viewers"] for r in (await get_json(base, "/api/live"))["rooms"]}


async def viewers_on(base: str) -> int:
    """Viewers of ``maths`` watching on the node at ``base`` (its own, not other nodes')."""
    return (await get_json(base, "/api/rooms/maths"))["viewers"]


def counts_are(expected: dict[str, int]):
    """A check that each node (base URL -> count) has that many viewers of ``maths``."""
    async def check() -> bool:
        return [await viewers_on(base) for base in expected] == list(expected.values())

    return check


async def test_three_nodes_share_a_paid_room_ban_refund_and_failover(tmp_path):
    procs = []
    peers: list = []

    async def watch(base: str, api: Api) -> Viewer:
        """``api``'s user plays ``maths`` on the node at ``base`` (its view token minted there)."""
        viewer = Viewer(base)
        peers.append(viewer)
        assert await viewer.post("/whep/maths", token=await view_token(Api(base, api.token), "maths")) == 201, \
            viewer.error
        return viewer

    async with flushed_redis(REDIS_DB), fresh_postgres() as database_url:
        try:
            flags, rtmp_b = node_flags(database_url), free_port()
            flags_b = node_flags(database_url, rtmp_b)  # B also takes RTMP encoders
            a = await start_server(tmp_path / "a", *flags, ready_path="/api/live")  # migrates first
            procs.append(a[0])
            b, c = await asyncio.gather(start_server(tmp_path / "b", *flags_b, ready_path="/api/live"),
                                        start_server(tmp_path / "c", *flags, ready_path="/api/live"))
            procs += [b[0], c[0]]
            (_, base_a), (proc_b, base_b), (_, base_c) = a, b, c

            # the same accounts, room and tickets on every node (one database)
            creator = await Api.sign_up(base_a, "creator")
            await paid_room(creator, max_devices=2)
            stayer_b, stayer_c = await Api.sign_up(base_b), await Api.sign_up(base_c)
            rowdy, refunded = await Api.sign_up(base_c), await Api.sign_up(base_b)
            orders = {}
            for api in (stayer_b, stayer_c, rowdy, refunded):
                orders[api.user["id"]] = await buy(api, "maths")
            status, minted = await creator.post("/api/rooms/maths/tokens", {"scope": "publish"})
            assert status == 201, minted
            publish_token = minted["token"]

            publisher = Publisher(base_a)
            peers.append(publisher)
            assert await publisher.publish("maths", publish_token) == 201

            async def on_air() -> bool:
                return "maths" in await live_viewers(base_c)

            await until(on_air, what="the room on air cluster-wide")

            # publishing on another node while A is live: 409 naming the origin, nothing changed
            second = Publisher(base_b)
            peers.append(second)
            assert await second.publish("maths", publish_token) == 409
            assert '"live_elsewhere"' in second.error and base_a.split("//")[1] in second.error
            assert (await get_json(base_b, "/api/rooms/maths"))["live"] is False
            if have_ffmpeg():  # so is an RTMP encoder with the room's stream key
                status, body = await creator.get("/api/rooms/maths/stream-key")
                assert status == 200, body
                encoder = FfmpegRtmpPublisher(f"rtmp://127.0.0.1:{rtmp_b}/live/{body['stream_key']}", audio=False)
                await encoder.start()
                try:
                    assert await encoder.wait(timeout=15) > 0  # refused: ffmpeg gave up (not killed at the timeout)
                finally:
                    await encoder.kill()
                assert (await get_json(base_b, "/api/rooms/maths"))["live"] is False

            viewer_b, viewer_c = await watch(base_b, stayer_b), await watch(base_c, stayer_c)
            seen_b, seen_c = await asyncio.gather(frames_grow(viewer_b), frames_grow(viewer_c))
            assert in_order(seen_b) and in_order(seen_c), (seen_b, seen_c)
            now = (viewer_b.numbers[-1], viewer_c.numbers[-1])
            assert max(now) - min(now) < 30, now  # the same live picture (within a second) at the same moment
            assert viewer_b.audio_frames and viewer_c.audio_frames

            room_a = await get_json(base_a, "/api/rooms/maths")
            assert room_a["viewers"] == 0 and room_a["relays"] == 2  # one pull per edge node
            for base in (base_b, base_c):
                edge = await get_json(base, "/api/rooms/maths")
                assert edge["live"] and edge["viewers"] == 1 and edge["origin"] is not None

            # two buyers watch on A (the origin) and on B (an edge), one device each
            rowdy_a, rowdy_b = await watch(base_a, rowdy), await watch(base_b, rowdy)
            refunded_a, refunded_b = await watch(base_a, refunded), await watch(base_b, refunded)
            await asyncio.gather(*(frames_grow(v, count=10) for v in (rowdy_a, rowdy_b, refunded_a, refunded_b)))
            await until(counts_are({base_a: 2, base_b: 3, base_c: 1}), what="every player counted on its node")

            async def counted_everywhere() -> bool:
                return [(await live_viewers(base)).get("maths") for base in (base_a, base_b, base_c)] == [6, 6, 6]

            await until(counted_everywhere, what="six viewers counted on every node")

            # a ban in the creator's chat on C ends the banned buyer's players on A and B
            moderator = Chat()
            peers.append(moderator)
            assert await moderator.connect(base_c, "maths", publish_token), moderator.refused
            assert (await moderator.call("mod:ban", {"user_id": rowdy.user["id"]}))["ok"]
            await until(counts_are({base_a: 1, base_b: 2, base_c: 1}), what="the banned buyer's players ended")
            refused = Viewer(base_c)
            peers.append(refused)
            assert await refused.post("/whep/maths", token=await view_token(rowdy, "maths")) == 403
            assert json.loads(refused.error)["error"]["code"] == "banned"

            # a refund made on C ends the refunded buyer's players on A and B
            token = await view_token(refunded, "maths")
            order = orders[refunded.user["id"]]
            creator_on_c = Api(base_c, creator.token)
            status, body = await creator_on_c.post(f"/api/orders/{order['id']}/refund")
            assert status == 200 and body["order"]["status"] == "refunded", body
            await until(counts_are({base_a: 0, base_b: 1, base_c: 1}), what="the refunded buyer's players ended")
            after = Viewer(base_a)
            peers.append(after)
            assert await after.post("/whep/maths", token=token) == 403, after.error
            assert json.loads(after.error)["error"]["code"] == "ticket_required"
            # the others play on, the same picture
            seen_b, seen_c = await asyncio.gather(frames_grow(viewer_b), frames_grow(viewer_c))
            assert in_order(seen_b) and in_order(seen_c), (seen_b, seen_c)

            # B dies: its viewer plays again from C (the player's retry), C goes on
            proc_b.send_signal(signal.SIGKILL)
            proc_b.wait(timeout=10)
            await viewer_b.close()
            again = await watch(base_c, stayer_b)
            seen_again, seen_c = await asyncio.gather(frames_grow(again), frames_grow(viewer_c))
            assert in_order(seen_again) and in_order(seen_c)

            async def b_dropped() -> bool:
                return (await live_viewers(base_a)).get("maths") == 2  # C's two; B's entry expired

            await until(b_dropped, what="the dead node's viewers dropped from the count")

            # the origin dies; its creator reconnects on B (restarted): C re-pulls, its viewers resume
            proc_b, base_b = await start_server(tmp_path / "b", *flags_b, ready_path="/api/live")
            procs.append(proc_b)
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait(timeout=10)
            await publisher.close()
            tries: list[Publisher] = []

            async def published_on_b() -> bool:  # 409 live_elsewhere until A's claim expires
                if tries:
                    await tries[-1].close()
                tries.append(Publisher(base_b, start=50_000))
                peers.append(tries[-1])
                if await tries[-1].publish("maths", publish_token) == 201:
                    return True
                assert '"live_elsewhere"' in tries[-1].error, tries[-1].error
                return False

            await until(published_on_b, what="the creator publishing on B")
            for viewer in (viewer_c, again):
                resumed = await resumed_from(viewer, 50_000)
                assert in_order(resumed), resumed
            assert (await get_json(base_c, "/api/rooms/maths"))["origin"] is not None

            # the last viewer leaving C lets go of the origin
            assert await viewer_c.delete() == 200
            assert await again.delete() == 200

            async def let_go() -> bool:
                edge = await get_json(base_c, "/api/rooms/maths")
                return edge["origin"] is None and not edge["live"]

            await until(let_go, what="C letting go of B")
        finally:
            for peer in peers:
                await peer.close()
            for proc in procs:
                stop(proc)
