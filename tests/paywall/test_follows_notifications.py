"""Follow a creator, the creator page, and notifications: the in-app inbox and email through
a real SMTP server (aiosmtpd), for a room scheduled, 15 minutes before it, live (once its
first media arrived), and its replay."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time

import aiohttp
import pytest

from signalling.whip import ROOMS
from stagepass.app import create_app
from tests.support.paywall_fixtures import Api, paid_room, paywall_settings
from tests.support.smtp import free_port, smtp_server
from tests.support.waiting import wait_for
from tests.support.whip_offers import make_offer, post

pytestmark = pytest.mark.inprocess


@pytest.fixture
async def site(aiohttp_server, tmp_path, database_url):
    """(base URL, SMTP inbox) of a server that mails followers and looks for due reminders often."""
    with smtp_server() as (smtp_url, mails):
        yield await mailing_server(aiohttp_server, tmp_path, database_url, smtp_url, reminder_check_seconds=0.2), mails


async def mailing_server(aiohttp_server, tmp_path, database_url: str, smtp_url: str, **settings) -> str:
    """The base URL of a server that mails followers (its public URL, which email links use)."""
    port = free_port()
    settings = paywall_settings(tmp_path, database_url, smtp_url=smtp_url, mail_from="classes@example.org",
                                public_url=f"http://127.0.0.1:{port}", **settings)
    server = await aiohttp_server(create_app(settings), port=port)
    return str(server.make_url("")).rstrip("/")


async def inbox_of(api: Api) -> dict:
    status, body = await api.get("/api/me/notifications")
    assert status == 200, body
    return body


async def wait_inbox(api: Api, kinds: set[str], timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        box = await inbox_of(api)
        if {n["kind"] for n in box["notifications"]} == kinds:
            return box
        assert time.monotonic() < deadline, box
        await asyncio.sleep(0.1)


def in_minutes(minutes: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


async def test_followers_hear_of_a_scheduled_room_by_inbox_and_email(site):
    base, mails = site
    creator = await Api.sign_up(base, "creator")
    fan, quitter, stranger = await Api.sign_up(base), await Api.sign_up(base), await Api.sign_up(base)
    cid = creator.user["id"]
    assert (await creator.call("PATCH", "/api/me/profile", {"bio": "I teach maths."}))[0] == 200
    assert (await fan.post(f"/api/creators/{cid}/follow"))[1] == {"following": True, "followers": 1}
    assert (await fan.post(f"/api/creators/{cid}/follow"))[1]["followers"] == 1  # idempotent
    assert (await quitter.post(f"/api/creators/{cid}/follow"))[1]["followers"] == 2
    assert (await quitter.call("DELETE", f"/api/creators/{cid}/follow"))[1] == {"following": False, "followers": 1}
    # the fan wants no reminder emails (the inbox keeps them)
    status, prefs = await fan.patch("/api/me/notification-settings", {"reminder": {"email": False}})
    assert status == 200 and prefs["preferences"]["reminder"] == {"inbox": True, "email": False}

    # a room starting in 10 minutes: "scheduled" at once, the 15-minute reminder on the next look
    await paid_room(creator, starts_at=in_minutes(10), title="Live maths")
    box = await wait_inbox(fan, {"scheduled", "reminder"})
    assert box["unread"] == 2
    texts = {n["kind"]: n["text"] for n in box["notifications"]}
    assert re.fullmatch(r"Live maths is scheduled for \d{4}-\d\d-\d\d \d\d:\d\d UTC", texts["scheduled"]), texts
    assert re.fullmatch(r"Live maths starts in (9|10) minutes", texts["reminder"]), texts
    assert all(n["link"] == "/static/room.html?room=maths" for n in box["notifications"])
    # what the pages need to say it in Chinese (inbox.<kind> of the catalogues): the room and its start
    starts = (await fan.get("/api/catalog/maths"))[1]["room"]["starts_at"]
    assert all(n["room_title"] == "Live maths" and n["starts_at"] == starts for n in box["notifications"])
    assert (await inbox_of(quitter))["notifications"] == [] and (await inbox_of(stranger))["notifications"] == []

    [mail] = await mails.wait_for(1)
    await asyncio.sleep(0.5)  # a reminder email, were one wrongly sent, has arrived by now
    assert [m["To"] for m in mails.messages] == [fan.user["email"]]
    assert mail["From"] == "classes@example.org" and mail["Subject"].startswith("Live maths is scheduled")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f"{base}/static/room.html?room=maths" in mail.get_content()
    assert "Live maths 定于 " in mail.get_content() and "如需停止此类邮件" in mail.get_content()  # and in Chinese

    # the creator page shows it all, to anyone
    status, page = await stranger.get(f"/api/creators/{cid}")
    assert status == 200 and page["creator"]["bio"] == "I teach maths." and page["followers"] == 1
    assert [r["slug"] for r in page["upcoming"]] == ["maths"] and page["past"] == [] and page["following"] is False
    assert (await fan.get(f"/api/creators/{cid}"))[1]["following"] is True

    # reminders are sent once: more rounds add nothing
    await asyncio.sleep(0.6)
    assert len((await inbox_of(fan))["notifications"]) == 2

    # read one, then all
    first = box["notifications"][0]["id"]
    assert (await fan.post("/api/me/notifications/read", {"ids": [first]}))[1] == {"marked": 1}
    assert (await inbox_of(fan))["unread"] == 1
    assert (await fan.post("/api/me/notifications/read", {"ids": "all"}))[1] == {"marked": 1}
    assert (await inbox_of(fan))["unread"] == 0

    # one-click unsubscribe from the email, as a mail client does it (RFC 8058): no cookie, a form POST
    link = mail["List-Unsubscribe"].strip("<>")
    async with aiohttp.ClientSession() as http:
        async with http.get(link) as r:
            assert r.status == 200 and "Unsubscribe" in await r.text()
        assert (await fan.get("/api/me/notification-settings"))[1]["preferences"]["scheduled"]["email"] is True
        async with http.post(link, data={"List-Unsubscribe": "One-Click"}) as r:
            assert r.status == 200 and "scheduled" in await r.text()
        async with http.post(link.replace("token=", "token=x"), data={"List-Unsubscribe": "One-Click"}) as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_unsubscribe_link"
    assert (await fan.get("/api/me/notification-settings"))[1]["preferences"]["scheduled"] == {
        "inbox": True, "email": False}

    # rescheduled: a new "scheduled" notice in the inbox, and no email (unsubscribed from that kind)
    status, _ = await creator.patch("/api/rooms/maths", {"starts_at": in_minutes(120)})
    assert status == 200
    assert [n["kind"] for n in (await inbox_of(fan))["notifications"]].count("scheduled") == 2
    await asyncio.sleep(0.5)
    assert len(mails.messages) == 1
    # the inbox channel off hides the kind
    await fan.patch("/api/me/notification-settings", {"scheduled": {"inbox": False}})
    assert {n["kind"] for n in (await inbox_of(fan))["notifications"]} == {"reminder"}


async def test_bad_requests_are_refused_and_change_nothing(site):
    base, mails = site
    creator = await Api.sign_up(base, "creator")
    viewer, other = await Api.sign_up(base), await Api.sign_up(base)
    cid = creator.user["id"]
    cases = [
        (viewer.post(f"/api/creators/{other.user['id']}/follow"), 404, "creator_not_found"),  # a viewer
        (creator.post(f"/api/creators/{cid}/follow"), 400, "cannot_follow_self"),
        (viewer.post("/api/creators/99999/follow"), 404, "creator_not_found"),
        (viewer.post("/api/creators/abc/follow"), 404, "creator_not_found"),
        (Api(base).post(f"/api/creators/{cid}/follow"), 401, "login_required"),
        (viewer.patch("/api/me/notification-settings", {"live": {"sms": False}}), 400, "unknown_channel"),
        (viewer.patch("/api/me/notification-settings", {"gossip": {"email": False}}), 400, "unknown_kind"),
        (viewer.patch("/api/me/notification-settings", {"live": {"email": False}, "replay": {"email": "no"}}),
         400, "invalid_preferences"),
        (viewer.post("/api/me/notifications/read", {"ids": ["1"]}), 400, "invalid_ids"),
        (viewer.patch("/api/me/profile", {"bio": "x"}), 403, "not_a_creator"),
        (creator.patch("/api/me/profile", {"bio": "x" * 2001}), 400, "invalid_bio"),
        (creator.patch("/api/me/profile", {"bio": "x", "role": "admin"}), 400, "unknown_field"),
        (viewer.get("/api/notifications/unsubscribe?token=forged"), 400, "invalid_unsubscribe_link"),
    ]
    for call, status, code in cases:
        got, body = await call
        assert (got, body["error"]["code"]) == (status, code), (code, body)
    prefs = (await viewer.get("/api/me/notification-settings"))[1]["preferences"]
    assert all(all(channels.values()) for channels in prefs.values())  # the refused half changed nothing
    page = (await viewer.get(f"/api/creators/{cid}"))[1]
    assert page["followers"] == 0 and page["creator"]["bio"] == ""
    assert mails.messages == []


@pytest.mark.slow
async def test_followers_hear_when_a_room_goes_live_and_its_replay_is_ready(aiohttp_server, tmp_path):
    """A real WHIP broadcast (an aiortc publisher): followers get "live" while it runs and
    "replay" once the recording is packaged, in the inbox and by email; an open room of the
    configuration (nobody follows it) announces nothing."""
    from tests.support.peers import Publisher

    with smtp_server() as (smtp_url, mails):
        base = await mailing_server(aiohttp_server, tmp_path, f"sqlite:///{tmp_path / 'p.db'}", smtp_url)
        creator = await Api.sign_up(base, "creator")
        fan = await Api.sign_up(base)
        await fan.post(f"/api/creators/{creator.user['id']}/follow")
        await paid_room(creator)  # no start time: nothing scheduled
        key = (await creator.get("/api/rooms/maths/stream-key"))[1]["stream_key"]
        publisher = Publisher(base)
        assert await publisher.publish("maths", key) == 201
        try:
            await wait_inbox(fan, {"live"})
            await asyncio.sleep(2.0)
        finally:
            assert await publisher.delete() == 200
            await publisher.close()
        box = await wait_inbox(fan, {"live", "replay"}, timeout=60)
        assert [n["text"] for n in box["notifications"]] == ["The replay of Live maths is ready", "Live maths is live now"]
        await mails.wait_for(2)
        assert sorted(m["Subject"] for m in mails.to(fan.user["email"])) == [
            "Live maths is live now", "The replay of Live maths is ready"]
        opened = Publisher(base)
        assert await opened.publish("open", "open-room-key") == 201
        await asyncio.sleep(0.5)
        assert await opened.delete() == 200
        await opened.close()
        assert len((await inbox_of(fan))["notifications"]) == 2


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.e2e)])
async def test_followers_hear_once_of_a_broadcast_with_media_never_of_a_discarded_one(
        aiohttp_server, tmp_path, workers):
    """"Live now" goes out when a broadcast is confirmed (its first media arrived), not when
    its POST is accepted: a publisher whose ICE never connects opens a broadcast that is
    discarded, and nobody hears of a class that never happened. In one process and with
    two media workers (the control plane hears of the first media from the host worker)."""
    from tests.support.peers import Publisher

    with smtp_server() as (smtp_url, mails):
        port = free_port()
        settings = paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'p.db'}", smtp_url=smtp_url,
                                    mail_from="classes@example.org", public_url=f"http://127.0.0.1:{port}",
                                    workers=workers, connect_timeout=1.0)
        app = create_app(settings)
        base = str((await aiohttp_server(app, port=port)).make_url("")).rstrip("/")
        creator = await Api.sign_up(base, "creator")
        fan = await Api.sign_up(base)
        await fan.post(f"/api/creators/{creator.user['id']}/follow")
        await paid_room(creator)
        key = (await creator.get("/api/rooms/maths/stream-key"))[1]["stream_key"]
        rooms = app[ROOMS]
        ended: list[tuple] = []

        async def on_end(room, broadcast) -> None:
            ended.append((broadcast.id, broadcast.discarded))

        rooms.broadcast_ended.append(on_end)

        # a publisher whose ICE never connects: its POST opens a broadcast, which is discarded
        status, _, _ = await post(base, "/whip/maths", await make_offer(kinds=("video",)), token=key)
        assert status == 201
        await wait_for(lambda: len(ended) == 1, timeout=15)
        assert ended[0][1] is True  # discarded
        await asyncio.sleep(0.5)  # what the accepted POST may have set going has had its time
        assert (await inbox_of(fan))["notifications"] == [] and mails.messages == []

        # a publisher whose media flows: followers hear of its broadcast once
        publisher = Publisher(base)
        assert await publisher.publish("maths", key) == 201
        try:
            box = await wait_inbox(fan, {"live"})
            assert [n["text"] for n in box["notifications"]] == ["Live maths is live now"]
            room = rooms.get("maths")
            await wait_for(lambda: room.live, timeout=10)
            broadcast = room.broadcast
            assert broadcast.confirmed and broadcast.id != ended[0][0]
            await asyncio.sleep(1.0)  # media goes on flowing: no second word of it
        finally:
            assert await publisher.delete() == 200
            await publisher.close()
        await wait_for(lambda: len(ended) == 2, timeout=10)
        assert ended[1] == (broadcast.id, False)
        await mails.wait_for(1)
        assert [m["Subject"] for m in mails.to(fan.user["email"])] == ["Live maths is live now"]
        assert len((await inbox_of(fan))["notifications"]) == 1
