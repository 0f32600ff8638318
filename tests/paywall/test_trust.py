"""Content review and trust: an unverified creator's room waits in the admin review queue
(not listed, not sold, not watched) until approved; verified creators publish at once;
reports; a takedown ends the live broadcast (a real aiortc publisher), refunds the buyers
and leaves the ledger balanced; every admin action is in the audit log."""

from __future__ import annotations

import asyncio

from paywall.http import PAYWALL
from stagepass.app import create_app
from tests.support.paywall_fixtures import Api, buy, paid_room, paywall_settings
from tests.support.peers import Publisher
import pytest

pytestmark = pytest.mark.inprocess


async def catalog_slugs(api: Api) -> list[str]:
    return [r["slug"] for r in (await api.get("/api/catalog"))[1]["rooms"]]


async def test_review_queue_reports_takedown_and_audit_log(aiohttp_server, tmp_path):
    app = create_app(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", review_unverified=True))
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    buyer, admin = await Api.sign_up(base), await Api.sign_up(base)
    await app[PAYWALL].accounts.set_role(admin.user["email"], "admin")
    await buyer.post(f"/api/creators/{creator.user['id']}/follow")

    # an unverified creator's room waits for review
    assert (await paid_room(creator, starts_at="2030-01-01T10:00:00Z"))["room"]["listing"] == "pending"
    assert (await buyer.get("/api/me/notifications"))[1]["notifications"] == []  # not announced while in review
    assert await catalog_slugs(buyer) == []
    assert (await buyer.get("/api/catalog?q=maths"))[1]["rooms"] == []
    status, body = await buyer.post("/api/orders", {"room": "maths", "product": "ticket", "idempotency_key": "k" * 16})
    assert (status, body["error"]["code"]) == (409, "room_not_listed")
    status, body = await buyer.post("/api/rooms/maths/tokens", {"scope": "view"})
    assert (status, body["error"]["code"]) == (403, "room_not_listed")
    assert [r["slug"] for r in (await creator.get("/api/creator/rooms"))[1]["rooms"]] == ["maths"]  # its creator sees it
    assert (await creator.get("/api/admin/review-queue"))[0] == 403
    assert [r["slug"] for r in (await admin.get("/api/admin/review-queue"))[1]["rooms"]] == ["maths"]
    assert (await admin.post("/api/admin/review-queue/maths", {"decision": "yes"}))[1]["error"]["code"] == "invalid_decision"
    status, body = await admin.post("/api/admin/review-queue/maths", {"decision": "approved"})
    assert status == 200 and body["room"]["listing"] == "listed"
    assert await catalog_slugs(buyer) == ["maths"]
    assert [n["kind"] for n in (await buyer.get("/api/me/notifications"))[1]["notifications"]] == ["scheduled"]
    order = await buy(buyer, "maths")

    # verified creators publish at once
    assert (await admin.post("/api/admin/creators/99/verification", {"verified": True}))[0] == 404
    assert (await admin.post(f"/api/admin/creators/{creator.user['id']}/verification", {"verified": "yes"}))[0] == 400
    assert (await admin.post(f"/api/admin/creators/{creator.user['id']}/verification", {"verified": True}))[0] == 200
    assert (await paid_room(creator, slug="art"))["room"]["listing"] == "listed"
    art_order = await buy(buyer, "art")

    # reports
    refusals = [
        ({"kind": "video", "target": "maths", "reason": "spam"}, 400, "invalid_kind"),
        ({"kind": "room", "target": "../x", "reason": "spam"}, 400, "invalid_target"),
        ({"kind": "room", "target": "maths", "reason": " "}, 400, "invalid_reason"),
        ({"kind": "room", "target": "nope", "reason": "spam"}, 404, "room_not_found"),
        ({"kind": "user", "target": "12345", "reason": "spam"}, 404, "user_not_found"),
    ]
    for body, status, code in refusals:
        got, answer = await buyer.post("/api/reports", body)
        assert (got, answer["error"]["code"]) == (status, code), answer
    status, answer = await buyer.post("/api/reports", {"kind": "room", "target": "maths", "reason": "plagiarised slides"})
    assert status == 201 and answer["report"]["status"] == "open"
    assert (await buyer.post("/api/reports", {"kind": "room", "target": "maths", "reason": "again"}))[0] == 409
    assert (await buyer.post("/api/reports", {"kind": "user", "target": creator.user["id"], "reason": "rude"}))[0] == 201
    assert (await buyer.post("/api/reports", {"kind": "danmaku", "target": "dm_42", "reason": "slur"}))[0] == 201
    assert (await buyer.get("/api/admin/reports"))[0] == 403
    open_reports = (await admin.get("/api/admin/reports"))[1]["reports"]
    assert [(r["kind"], r["target"]) for r in open_reports] == [
        ("room", "maths"), ("user", str(creator.user["id"])), ("danmaku", "dm_42")]

    # takedown of a live room, with refunds
    key = (await creator.get("/api/rooms/maths/stream-key"))[1]["stream_key"]
    publisher = Publisher(base, audio=False)
    assert await publisher.publish("maths", key) == 201
    try:
        for _ in range(100):
            if (await buyer.get("/api/rooms/maths"))[1].get("phase") == "live":
                break
            await asyncio.sleep(0.1)
        assert (await admin.post("/api/admin/rooms/maths/takedown", {"refund": True}))[1]["error"]["code"] == "invalid_reason"
        status, result = await admin.post("/api/admin/rooms/maths/takedown",
                                          {"reason": "plagiarised slides", "refund": True})
        assert status == 200 and result["refunded"] == [order["id"]]
        assert (await buyer.get("/api/rooms/maths"))[1]["phase"] == "ended"
    finally:
        await publisher.close()
    assert (await buyer.get(f"/api/orders/{order['id']}"))[1]["order"]["status"] == "refunded"
    assert await catalog_slugs(buyer) == ["art"]
    status, body = await buyer.post("/api/rooms/maths/tokens", {"scope": "view"})
    assert (status, body["error"]["code"]) == (410, "taken_down")
    status, body = await creator.post("/api/rooms/maths/tokens", {"scope": "publish"})
    assert (status, body["error"]["code"]) == (410, "taken_down")
    assert (await admin.post("/api/admin/rooms/maths/takedown", {"reason": "again"}))[0] == 409
    assert (await admin.post("/api/admin/reports/1/resolve", {"note": "taken down"}))[0] == 200
    assert (await admin.post("/api/admin/reports/1/resolve", {}))[0] == 409

    # an admin's refund of another order, then the log of it all
    assert (await admin.post(f"/api/orders/{art_order['id']}/refund"))[0] == 200
    status, ledger = await admin.get("/api/admin/ledger")
    assert status == 200 and ledger["balanced"]
    assert (await buyer.get("/api/admin/audit"))[0] == 403
    entries = (await admin.get("/api/admin/audit"))[1]["entries"]
    assert [(e["action"], e["target"]) for e in entries] == [
        ("refund", f"order:{art_order['id']}"), ("report", "report:1"), ("takedown", "room:maths"),
        ("verification", f"user:{creator.user['id']}"), ("listing", "room:maths")]
    takedown = entries[2]
    assert takedown["actor"] == {"id": admin.user["id"], "email": admin.user["email"]}
    assert takedown["detail"] == {"reason": "plagiarised slides", "refunded": [order["id"]]}
    assert [e["action"] for e in (await admin.get("/api/admin/audit?action=refund"))[1]["entries"]] == ["refund"]
    assert (await admin.get("/api/admin/audit?action=nope"))[0] == 400
