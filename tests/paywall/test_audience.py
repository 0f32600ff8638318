"""The audience log: samples of concurrent viewers per broadcast, peak and average at its
end. Unit tests drive ``AudienceSampler`` with a fixed clock; the end-to-end test counts
real aiortc viewers of the real app, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace

import pytest

from stagepass.app import AUDIENCE, create_app
from core.settings import ConfigError, Settings
from mediaserver.live.room import Broadcast
from paywall.audience import AudienceLog, AudienceSampler, summarize
from paywall.db import Database
from paywall.http import PAYWALL
from signalling.whip import ROOMS
from tests.support.waiting import wait_for
from tests.support.paywall_fixtures import Api, buy, paid_room, paywall_settings, view_token
from tests.support.peers import Publisher, Viewer

pytestmark = pytest.mark.inprocess


# ---------------------------------------------------------------------- pure numbers
def test_summarize_weights_each_sample_until_the_next():
    assert summarize([]) == (0, 0.0)
    assert summarize([(0, 3)]) == (3, 3.0)
    # 0 for 10 s, 2 for 20 s, 1 for 10 s; the end point (40 s) has no weight
    assert summarize([(0, 0), (10_000, 2), (20_000, 2), (30_000, 1), (40_000, 1)]) == (2, 50 / 40)
    # irregular spacing: 4 viewers for 1 s, 1 viewer for 9 s
    assert summarize([(0, 4), (1_000, 1), (10_000, 0)]) == (4, (4 * 1 + 1 * 9) / 10)


def test_the_sample_interval_is_a_validated_setting():
    assert Settings().paywall.audience_sample_seconds == 5.0
    assert Settings.load([], {"STAGEPASS_AUDIENCE_SAMPLE_SECONDS": "0.5"}).paywall.audience_sample_seconds == 0.5
    assert Settings.load(["--audience-sample-seconds", "30"], {}).paywall.audience_sample_seconds == 30
    for bad in ("0", "-1", "99999", "often"):
        with pytest.raises(ConfigError, match="audience_sample_seconds"):
            Settings.load([], {"STAGEPASS_AUDIENCE_SAMPLE_SECONDS": bad})


# ---------------------------------------------------------------------- sampler, fixed clock
def fake_room(name: str, broadcast: Broadcast | None, viewers: int = 0) -> SimpleNamespace:
    """What the sampler reads of a ``Room``: its name, broadcast and WHEP subscribers."""
    return SimpleNamespace(name=name, broadcast=broadcast, subscribers={f"s{i}": object() for i in range(viewers)})


async def _catalog(url: str) -> tuple[Database, AudienceLog]:
    db = Database(url)
    await db.migrate()
    async with db.engine.begin() as conn:
        from sqlalchemy import text

        await conn.execute(text("INSERT INTO users (id, email, display_name, password_hash, role, created_at) "
                                "VALUES (1, 'c@example.org', 'C', 'x', 'creator', CURRENT_TIMESTAMP)"))
        await conn.execute(text(
            "INSERT INTO rooms (id, slug, creator_id, title, description, tags, currency, ticket_price, "
            "replay_included, allow_downloads, preview_seconds, max_devices, stream_key, created_at) "
            "VALUES (1, 'maths', 1, 'Maths', '', '[]', 'USD', 500, true, false, 0, 1, 'k', CURRENT_TIMESTAMP)"))
    return db, AudienceLog(db)


async def test_sampler_logs_catalog_rooms_and_finalizes_at_the_end(database_url):
    db, audience = await _catalog(database_url)
    try:
        t0 = time.time() - 100
        live = Broadcast(confirmed=True, started_at=t0)
        maths = fake_room("maths", live)
        config_room = fake_room("open", Broadcast(confirmed=True, started_at=t0), viewers=7)  # STAGEPASS_ROOMS: not logged
        idle = fake_room("idle", None, viewers=3)  # no broadcast: nothing to sample
        sampler = AudienceSampler(audience, [maths, config_room, idle], interval=5)

        for offset, viewers in ((0, 0), (10, 2), (20, 2), (30, 1)):
            maths.subscribers = {f"s{i}": object() for i in range(viewers)}
            assert await sampler.sample_once(now=t0 + offset) == 1
        assert sampler.ticks == 4
        # an older or equal t_ms is ignored (clocks do not run backwards in the log)
        assert await sampler.sample_once(now=t0 + 30) == 0

        session, points = await audience.session(live.id)
        assert points == [(0, 0), (10_000, 2), (20_000, 2), (30_000, 1)]
        assert session.live and session.ended_at is None
        assert (session.peak_viewers, session.duration_ms) == (2, 30_000)  # so far

        await sampler.broadcast_ended(maths, live, now=t0 + 40)
        session, points = await audience.session(live.id)
        assert points[-1] == (40_000, 1)
        assert not session.live
        assert session.peak_viewers == 2
        assert session.avg_viewers == pytest.approx(50 / 40)
        assert session.duration_ms == 40_000
        assert session.ended_at.timestamp() == pytest.approx(t0 + 40, abs=0.01)

        # after the end, late samples change nothing
        maths.subscribers = {f"s{i}": object() for i in range(9)}
        assert await sampler.sample_once(now=t0 + 50) == 0
        assert (await audience.session(live.id))[0].peak_viewers == 2
        # the open room left no trace
        assert await audience.session(config_room.broadcast.id) is None
        await sampler.close()
    finally:
        await db.close()


async def test_a_broadcast_is_sampled_once_its_first_media_came(database_url):
    """A broadcast whose publisher has sent no media yet may be discarded (there was no
    broadcast): it is not sampled, so it leaves no row, until it is confirmed."""
    db, audience = await _catalog(database_url)
    try:
        t0 = time.time() - 10
        waiting = Broadcast(started_at=t0)
        maths = fake_room("maths", waiting, viewers=2)
        sampler = AudienceSampler(audience, [maths], interval=5)
        assert await sampler.sample_once(now=t0 + 1) == 0
        assert await audience.session(waiting.id) is None
        waiting.confirmed = True
        assert await sampler.sample_once(now=t0 + 2) == 1
        assert (await audience.session(waiting.id))[1] == [(2000, 2)]
        await sampler.close()
    finally:
        await db.close()


async def test_a_short_broadcast_is_logged_by_its_end_alone(database_url):
    db, audience = await _catalog(database_url)
    try:
        t0 = time.time() - 3
        short = Broadcast(confirmed=True, started_at=t0)
        sampler = AudienceSampler(audience, [], interval=5)
        await sampler.broadcast_ended(fake_room("maths", None, viewers=1), short, now=t0 + 3)
        session, points = await audience.session(short.id)
        assert points == [(3000, 1)]
        assert (session.peak_viewers, session.avg_viewers, session.duration_ms, session.live) == (1, 1.0, 3000, False)
    finally:
        await db.close()


async def test_errors_are_logged_with_the_rooms_and_sampling_goes_on(database_url, caplog):
    db, audience = await _catalog(database_url)
    t0 = time.time() - 10
    maths = fake_room("maths", Broadcast(confirmed=True, started_at=t0), viewers=2)
    sampler = AudienceSampler(audience, [maths], interval=0.05)
    await db.close()
    broken = Database("sqlite:////nonexistent/dir/x.db")  # every query fails
    sampler.audience = AudienceLog(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="stagepass.audience"):
            await sampler.start()
            await wait_for(lambda: sampler.ticks >= 3, timeout=10)
            assert sampler.tasks  # still running after failed rounds
        assert any("sampling rooms maths failed" in r.getMessage() for r in caplog.records)
    finally:
        await sampler.close()
        assert not sampler.tasks
        await broken.close()


async def test_broadcasts_left_open_by_a_crash_are_closed_at_the_next_start(database_url):
    db, audience = await _catalog(database_url)
    try:
        t0 = time.time() - 3600
        crashed, recent = Broadcast(confirmed=True, started_at=t0), Broadcast(confirmed=True, started_at=time.time() - 20)
        sampler = AudienceSampler(audience, [fake_room("maths", crashed, 3)], interval=5)
        await sampler.sample_once(now=t0 + 60)
        sampler.rooms = [fake_room("maths", recent, 1)]  # e.g. live on another node right now
        await sampler.sample_once()
        # the process dies here: no end, no close

        restarted = AudienceSampler(audience, [], interval=5)
        await restarted.start()
        await restarted.close()
        session, _ = await audience.session(crashed.id)
        assert (session.live, session.peak_viewers, session.duration_ms) == (False, 3, 60_000)
        assert (await audience.session(recent.id))[0].live
    finally:
        await db.close()


async def test_a_restarted_node_ends_its_own_broadcasts_at_once_and_no_one_elses(database_url):
    """kill -9 then a restart seconds later: this node's broadcasts end at their last sample
    however recent; another node's recent ones go on (they are live there)."""
    db, audience = await _catalog(database_url)
    try:
        started = time.time() - 30
        mine, theirs = Broadcast(confirmed=True, started_at=started), Broadcast(confirmed=True, started_at=started)
        here = AudienceSampler(audience, [fake_room("maths", mine, 2)], interval=5, node="node-a")
        there = AudienceSampler(audience, [fake_room("maths", theirs, 4)], interval=5, node="node-b")
        for offset in (0, 10, 20):
            await here.sample_once(now=started + offset)
            await there.sample_once(now=started + offset + 1)
        # node-a is killed (no end, no close) and starts again 10 s after its last sample
        restarted = AudienceSampler(audience, [], interval=5, node="node-a")
        await restarted.start()
        await restarted.close()
        session, points = await audience.session(mine.id)
        assert (session.live, session.peak_viewers, session.duration_ms) == (False, 2, 20_000)
        assert session.ended_at.timestamp() == pytest.approx(started + 20, abs=0.01)
        assert points[-1] == (20_000, 2)
        assert (await audience.session(theirs.id))[0].live
    finally:
        await db.close()


# ---------------------------------------------------------------------- real viewers, real app
class TokenViewer(Viewer):
    async def play_with(self, room: str, token: str) -> int:
        return await self.post(f"/whep/{room}", token=token)


@pytest.mark.slow
async def test_real_viewers_are_sampled_and_the_dashboard_reports_them(aiohttp_server, tmp_path, database_url):
    app = create_app(paywall_settings(tmp_path, database_url, audience_sample_seconds=0.2))
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="maths")
    fans = [await Api.sign_up(base) for _ in range(2)]
    tokens = []
    for fan in fans:
        await buy(fan, "maths")
        tokens.append(await view_token(fan, "maths"))
    sampler, rooms = app[AUDIENCE], app[ROOMS]
    audience = app[PAYWALL].audience
    peers: list = []
    try:
        status, minted = await creator.post("/api/rooms/maths/tokens", {"scope": "publish"})
        assert status == 201
        publisher = Publisher(base)
        peers.append(publisher)
        assert await publisher.publish("maths", minted["token"]) == 201
        room = rooms.get("maths")
        broadcast = room.broadcast.id

        viewers = []
        for token in tokens:
            viewer = TokenViewer(base)
            peers.append(viewer)
            assert await viewer.play_with("maths", token) == 201, viewer.error
            viewers.append(viewer)
        await wait_for(lambda: all(len(v.numbers) > 5 for v in viewers), timeout=20)
        assert len(room.subscribers) == 2

        async def samples_of(n: int) -> int:
            found = await audience.session(broadcast)
            return sum(1 for _, v in found[1] if v == n) if found else 0

        # two watching for a while (longer than it took them to join), then one leaves
        joined_ms = room.broadcast.t_ms()
        deadline = time.monotonic() + 30
        while await samples_of(2) < 5 or room.broadcast.t_ms() < 2 * joined_ms + 1000:
            assert time.monotonic() < deadline, "no samples of 2 viewers"
            await asyncio.sleep(0.2)
        assert await viewers[1].delete() == 200
        await viewers[1].close()
        await wait_for(lambda: len(room.subscribers) == 1, timeout=10)
        ticks = sampler.ticks
        await wait_for(lambda: sampler.ticks >= ticks + 5, timeout=20)
        assert await samples_of(1) >= 3

        assert await publisher.delete() == 200  # WHIP DELETE: the broadcast ends
        assert room.broadcast is None

        status, body = await creator.get("/api/creator/dashboard")
        assert status == 200, body
        (maths,) = body["rooms"]
        assert maths["tickets_sold"] == 2
        (session,) = maths["sessions"]
        assert session["id"] == broadcast and session["live"] is False and session["ended_at"]
        assert session["peak_viewers"] == 2
        assert 1 <= session["avg_viewers"] <= 2
        assert session["duration_ms"] >= 1000 and session["samples"] >= 8

        status, body = await creator.get(f"/api/creator/broadcasts/{broadcast}/audience")
        assert status == 200, body
        samples = body["samples"]
        assert len(samples) == session["samples"]
        assert [t for t, _ in samples] == sorted({t for t, _ in samples})  # strictly increasing
        assert max(v for _, v in samples) == 2 and samples[-1][1] == 1
        assert samples[-1][0] == session["duration_ms"]
    finally:
        for peer in peers:
            await peer.close()
