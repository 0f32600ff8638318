"""A sign-up flood does not freeze live media: argon2 runs off the event loop (a bounded,
low-priority pool owned by the paywall) and sign-ups are limited per client address.

The flood test plays a real room (aiortc WHIP publisher and WHEP viewer over loopback)
while 20 sign-ups arrive at once from 20 client addresses (127.0.0.2-21, so the per-client
limit does not stop them: every one costs a hash), and checks the viewer's longest gap
between frames against quiet windows as long as the floods, in between them. With argon2
on the loop it was 1.6-3.7 s; the bound is 250 ms, more only when the quiet windows stall
longer."""

from __future__ import annotations

import asyncio
import secrets
import time

import aiohttp
import pytest
from argon2 import PasswordHasher

from stagepass.app import create_app
from core.access import Refusal
from core.settings import ConfigError
from paywall.http import PAYWALL
from paywall.models import User
from paywall.passwords import PasswordPool
from tests.support.password_costs import CHEAP_HASHER, DEFAULT_ARGON2
from tests.support.paywall_fixtures import Api, paywall_settings
from tests.support.peers import Publisher, Viewer
from tests.support.waiting import wait_for

pytestmark = pytest.mark.inprocess


async def sign_up_from(base: str, address: str, email: str) -> int:
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.post(f"{base}/api/auth/signup", json={"email": email, "password": "correct horse battery"},
                             timeout=aiohttp.ClientTimeout(total=120)) as r:
            return r.status


def longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest interval between frames that overlaps [start, end]."""
    before = [t for t in times if t < start][-1:]
    inside = [t for t in times if start <= t <= end]
    after = [t for t in times if t > end][:1]
    window = before + inside + after
    return max((b - a for a, b in zip(window, window[1:])), default=float("inf"))


ROUNDS = 3


async def frame_after(viewer: Viewer, t: float) -> None:
    """Wait for the viewer's first frame after ``t`` (it closes the interval that spans ``t``)."""
    await wait_for(lambda: viewer.frame_times and viewer.frame_times[-1] > t, timeout=30)


@pytest.mark.slow
async def test_signup_flood_keeps_live_frames_flowing(aiohttp_server, tmp_path):
    """Three rounds of 20 concurrent sign-ups, each followed by a quiet window just as long;
    the median of the floods' longest frame gaps must stay under 250 ms, or under 1.5 times
    the longest gap of the quiet windows when the machine itself stalls the process longer
    (a shared 2-core machine at load 10-17 does, flood or not: 107-728 ms in windows of one
    run). The quiet windows together last as long as the floods and are interleaved with
    them, so both see the same machine for the same time: a flood that takes 20-55 s at
    nice 19 on a loaded machine is not held against a shorter or calmer baseline (the
    longest gap of a window grows with its length and the load). With argon2 on the loop
    every round shows seconds (12.8 s measured), as each sign-up holds the loop for a hash."""
    app = create_app(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", **DEFAULT_ARGON2))
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    publisher = Publisher(base, audio=False)
    viewer = Viewer(base, audio=False)
    try:
        assert await publisher.publish("open", "open-room-key") == 201
        assert await viewer.play("open") == 201
        await asyncio.wait_for(viewer.first_frame, 30)
        await wait_for(lambda: len(viewer.frame_times) >= 60, timeout=30)  # past the start-up

        floods, quiets = [], []
        for round_ in range(ROUNDS):
            start = time.monotonic()
            statuses = await asyncio.gather(*(
                sign_up_from(base, f"127.0.0.{2 + i}", f"flood-{round_}-{i}-{secrets.token_hex(3)}@example.org")
                for i in range(20)))
            end = time.monotonic()
            assert statuses == [201] * 20
            frames = len([t for t in viewer.frame_times if start <= t <= end])
            assert frames > 0
            await frame_after(viewer, end)
            floods.append(longest_gap(viewer.frame_times, start, end))
            quiet_start = time.monotonic()
            await asyncio.sleep(end - start)  # the baseline: as long as the flood, nothing else
            quiet_end = time.monotonic()
            await frame_after(viewer, quiet_end)
            quiets.append(longest_gap(viewer.frame_times, quiet_start, quiet_end))
            print(f"\nround {round_ + 1}: 20 sign-ups in {end - start:.2f} s, {frames} frames meanwhile, "
                  f"longest frame gap {floods[-1] * 1000:.0f} ms; quiet {quiet_end - quiet_start:.2f} s after: "
                  f"{quiets[-1] * 1000:.0f} ms")
        median, quiet = sorted(floods)[len(floods) // 2], max(quiets)
        bound = max(0.25, 1.5 * quiet)
        print(f"longest frame gap: median {median * 1000:.0f} ms over {ROUNDS} floods, {quiet * 1000:.0f} ms over "
              f"as much quiet time; bound {bound * 1000:.0f} ms")
        assert median < bound, f"a live viewer froze for {median * 1000:.0f} ms during 20 sign-ups (median round)"
    finally:
        await viewer.close()
        await publisher.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sign_ups_are_limited_per_client(aiohttp_server, tmp_path, database_url):
    app = create_app(paywall_settings(tmp_path, database_url, signups_per_hour=3))
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    for _ in range(3):
        await Api.sign_up(base)
    status, body = await Api(base).post("/api/auth/signup", {"email": "fourth@example.org",
                                                             "password": "correct horse battery"})
    assert (status, body["error"]["code"]) == (429, "too_many_signups")
    # nothing was created, and another client address is not affected
    assert (await Api(base).post("/api/auth/login", {"email": "fourth@example.org",
                                                     "password": "correct horse battery"}))[0] == 401
    assert await sign_up_from(base, "127.0.0.9", "fourth@example.org") == 201


async def test_password_pool_is_bounded():
    pool = PasswordPool(workers=1, max_waiting=2, hasher=PasswordHasher(**CHEAP_HASHER))
    try:
        results = await asyncio.gather(*(pool.hash("correct horse battery") for _ in range(5)),
                                       return_exceptions=True)
        busy = [r for r in results if isinstance(r, Refusal)]
        hashes = [r for r in results if isinstance(r, str)]
        assert len(hashes) == 2 and [(e.status, e.code) for e in busy] == [(503, "busy")] * 3
        assert await pool.verify(hashes[0], "correct horse battery") is True
        assert await pool.verify(hashes[0], "wrong") is False
        assert await pool.verify("not a hash", "wrong") is False
    finally:
        pool.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_behind_a_trusted_proxy_limits_are_per_forwarded_client(aiohttp_server, tmp_path, database_url):
    """Every request comes from the proxy (127.0.0.1 here): with it trusted, each client of
    X-Forwarded-For has its own limit; a client's own forged X-Forwarded-For entries (left
    of the proxy's) change nothing; an untrusted peer's header is ignored."""
    app = create_app(paywall_settings(tmp_path, database_url, signups_per_hour=2, trusted_proxies=["127.0.0.1"]))
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")

    async def sign_up(forwarded: str, address: str = "127.0.0.1") -> int:
        connector = aiohttp.TCPConnector(local_addr=(address, 0))
        async with aiohttp.ClientSession(connector=connector) as http:
            async with http.post(f"{base}/api/auth/signup", headers={"X-Forwarded-For": forwarded},
                                 json={"email": f"u-{secrets.token_hex(4)}@example.org",
                                       "password": "correct horse battery"}) as r:
                return r.status

    assert [await sign_up("203.0.113.7") for _ in range(3)] == [201, 201, 429]
    assert await sign_up("198.51.100.1, 203.0.113.7") == 429  # a forged hop in front: still 203.0.113.7
    assert await sign_up("203.0.113.8") == 201  # another client behind the same proxy
    # 127.0.0.5 is not a trusted proxy: its header is ignored, the limit is its own address's
    assert [await sign_up("192.0.2.1", "127.0.0.5") for _ in range(3)] == [201, 201, 429]
    assert await sign_up("192.0.2.2", "127.0.0.5") == 429


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("costs, stored", [({}, "m=65536,t=3,p=4"), ({"argon2_time_cost": 1, "argon2_memory_kib": 1024},
                                                                     "m=1024,t=1,p=4")])
async def test_password_hashes_take_the_configured_argon2_cost(aiohttp_server, tmp_path, database_url, costs, stored):
    """A sign-up's stored hash carries the configured cost (the server's default unless set),
    and the user logs in with it; costs out of range are refused at start-up."""
    settings = paywall_settings(tmp_path, database_url, **{**DEFAULT_ARGON2, **costs})
    app = create_app(settings)
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    api = await Api.sign_up(base, email="costly@example.org")
    async with app[PAYWALL].db() as s:
        stored_hash = (await s.get(User, api.user["id"])).password_hash
    assert stored_hash.startswith(f"$argon2id$v=19${stored}$"), stored_hash
    status, _ = await Api(base).post("/api/auth/login", {"email": "costly@example.org",
                                                         "password": "correct horse battery"})
    assert status == 200
    for bad in ({"argon2_time_cost": 0}, {"argon2_memory_kib": 512}, {"argon2_time_cost": 21}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            paywall_settings(tmp_path, database_url, **bad)
