"""Q&A through real Socket.IO clients against the real app, on SQLite and PostgreSQL."""

import asyncio
import secrets

from interaction.assembly import INTERACTION
from paywall.http import PAYWALL
from signalling.whip import ROOMS
from tests.support.chat import Chat, free_room_with_chats, refusal_code
from tests.support.waiting import wait_for
from tests.support.paywall_fixtures import Api, buy, paid_room
from tests.support.peers import Publisher
import pytest

pytestmark = pytest.mark.inprocess


def updates(chat: Chat, qid: int) -> list[dict]:
    return [q for q in chat.got("question") if q["id"] == qid]


async def test_ask_vote_withdraw_with_precise_errors(paywall_app):
    base, app = paywall_app
    room, creator, mod, (alice, bob), (a, b) = await free_room_with_chats(base)
    try:
        for payload, expected in [
            ({"text": ""}, "invalid_text"),
            ({"text": "   \n"}, "invalid_text"),
            ({"text": "x" * 501}, "text_too_long"),
            ({"text": 5}, "invalid_text"),
            ({}, "invalid_text"),
            ("just a string", "invalid_payload"),
            (None, "invalid_payload"),
            ({"text": "hi", "order_id": 5}, "invalid_order"),
            ({"text": "hi", "order_id": ""}, "invalid_order"),
        ]:
            assert refusal_code(await a.call("question:ask", payload)) == expected, payload
        assert (await a.call("question:list"))["items"] == []

        ack = await a.call("question:ask", {"text": "  " + "x" * 500 + "  "})
        assert ack["ok"], ack
        q = ack["question"]
        assert q["text"] == "x" * 500 and q["status"] == "open" and q["votes"] == 0
        assert q["user"] == {"id": alice.user["id"], "name": "Viewer"} and not q["paid"] and not q["pinned"]
        assert q["paid_amount"] == 0 and q["broadcast"] == "" and q["t_ms"] == 0
        await wait_for(lambda: updates(b, q["id"]), timeout=3)
        assert updates(b, q["id"])[0] == q

        # votes: once per user, never your own, only known ids of this room, ints only
        assert refusal_code(await a.call("question:vote", {"id": q["id"]})) == "own_question"
        ack = await b.call("question:vote", {"id": q["id"]})
        assert ack["ok"] and ack["question"]["votes"] == 1
        assert refusal_code(await b.call("question:vote", {"id": q["id"]})) == "already_voted"
        assert (await mod.call("question:vote", {"id": q["id"]}))["question"]["votes"] == 2
        for payload, expected in [
            ({"id": 999_999}, "not_found"),
            ({"id": str(q["id"])}, "invalid_payload"),
            ({"id": True}, "invalid_payload"),
            ({"id": 2**40}, "invalid_payload"),
            ({"id": 0}, "invalid_payload"),
            ([q["id"]], "invalid_payload"),
            (None, "invalid_payload"),
        ]:
            assert refusal_code(await b.call("question:vote", payload)) == expected, payload
        await wait_for(lambda: len(updates(a, q["id"])) == 3, timeout=3)
        assert [u["votes"] for u in updates(a, q["id"])] == [0, 1, 2]

        # withdraw: only your own, only while open
        assert refusal_code(await b.call("question:withdraw", {"id": q["id"]})) == "not_yours"
        assert refusal_code(await b.call("question:withdraw", {"id": "x"})) == "invalid_payload"
        ack = await a.call("question:withdraw", {"id": q["id"]})
        assert ack["ok"] and ack["question"]["status"] == "withdrawn" and ack["question"]["votes"] == 2
        await wait_for(lambda: updates(b, q["id"])[-1]["status"] == "withdrawn", timeout=3)
        assert refusal_code(await a.call("question:withdraw", {"id": q["id"]})) == "not_open"
        other = await Api.sign_up(base)
        c = await room.connect(other)
        assert refusal_code(await c.call("question:vote", {"id": q["id"]})) == "not_open"
        assert (await a.call("question:list"))["items"] == []

        # moderation applies: a muted viewer cannot ask; a moderator's delete takes it off the queue
        ack = await b.call("question:ask", {"text": "to be deleted"})
        assert (await mod.call("mod:delete", {"kind": "question", "id": ack["question"]["id"]}))["ok"]
        assert (await b.call("question:list"))["items"] == []
        assert refusal_code(await a.call("question:vote", {"id": ack["question"]["id"]})) == "not_open"
        assert (await mod.call("mod:mute", {"user_id": alice.user["id"], "seconds": 60}))["ok"]
        assert refusal_code(await a.call("question:ask", {"text": "can I?"})) == "muted"

        # a viewer has at most 5 free questions open at once
        for i in range(5):
            assert (await c.call("question:ask", {"text": f"q{i}"}))["ok"]
        assert refusal_code(await c.call("question:ask", {"text": "one more"})) == "too_many_questions"
        assert len((await c.call("question:list"))["items"]) == 5
    finally:
        await room.close()


async def test_queue_paid_first_then_votes_then_age_and_joiners_get_it(paywall_app):
    base, app = paywall_app
    room, creator, mod, apis, chats = await free_room_with_chats(base, viewers=4)
    a, b, c, d = chats
    try:
        oldest = (await a.call("question:ask", {"text": "oldest, no votes"}))["question"]
        two = (await b.call("question:ask", {"text": "two votes"}))["question"]
        one = (await c.call("question:ask", {"text": "one vote"}))["question"]
        small = await buy(apis[3], "maths", product="question", amount=300, message="q")
        big = await buy(apis[0], "maths", product="question", amount=500, message="q")
        paid_small = (await d.call("question:ask", {"text": "paid 3.00", "order_id": small["id"]}))["question"]
        paid_big = (await a.call("question:ask", {"text": "paid 5.00", "order_id": big["id"]}))["question"]
        assert paid_big["paid"] and paid_big["paid_amount"] == 500 and paid_big["currency"] == "USD"
        for voter in (a, c, d):
            assert (await voter.call("question:vote", {"id": two["id"]}))["ok"]
        for voter in (a, d):
            assert (await voter.call("question:vote", {"id": one["id"]}))["ok"]
        assert (await a.call("question:vote", {"id": paid_small["id"]}))["ok"]
        # votes: two=3, one=2; but paid first, then votes, then age
        expected = [paid_big["id"], paid_small["id"], two["id"], one["id"], oldest["id"]]
        listed = (await mod.call("question:list"))["items"]
        assert [q["id"] for q in listed] == expected
        assert [q["votes"] for q in listed] == [0, 1, 3, 2, 0]
        assert (await a.call("question:list", {}))["items"] == listed  # viewers see the same queue
        assert refusal_code(await a.call("question:list", "all")) == "invalid_payload"
        late = await room.connect(await Api.sign_up(base))
        await wait_for(lambda: late.got("questions"), timeout=3)
        assert late.got("questions")[0]["items"] == listed
        # same votes: the older first
        newer = (await c.call("question:ask", {"text": "newer, no votes"}))["question"]
        assert [q["id"] for q in (await a.call("question:list"))["items"]][-2:] == [oldest["id"], newer["id"]]
    finally:
        await room.close()


async def test_answer_pin_dismiss_are_for_moderators_and_answers_are_on_the_media_clock(paywall_app):
    base, app = paywall_app
    room, creator, mod, (alice, bob), (a, b) = await free_room_with_chats(base)
    publisher = Publisher(base)
    try:
        q1 = (await a.call("question:ask", {"text": "first"}))["question"]
        q2 = (await b.call("question:ask", {"text": "second"}))["question"]
        q3 = (await b.call("question:ask", {"text": "third"}))["question"]
        for event in ("question:answer", "question:pin", "question:dismiss"):
            assert refusal_code(await a.call(event, {"id": q1["id"]})) == "forbidden", event
            assert refusal_code(await mod.call(event, {"id": "1"})) == "invalid_payload", event
            assert refusal_code(await mod.call(event, {"id": 999_999})) == "not_found", event
        assert refusal_code(await mod.call("question:pin", {"id": q1["id"], "pinned": "yes"})) == "invalid_payload"
        assert [q["pinned"] for q in (await a.call("question:list"))["items"]] == [False] * 3

        # one pinned question per room: pinning another unpins the first (both emitted)
        assert (await mod.call("question:pin", {"id": q1["id"]}))["question"]["pinned"]
        ack = await mod.call("question:pin", {"id": q2["id"]})
        assert ack["ok"] and ack["question"]["pinned"]
        await wait_for(lambda: len(updates(a, q1["id"])) == 3, timeout=3)
        assert [u["pinned"] for u in updates(a, q1["id"])] == [False, True, False]
        assert {q["id"] for q in (await a.call("question:list"))["items"] if q["pinned"]} == {q2["id"]}
        assert not (await mod.call("question:pin", {"id": q2["id"], "pinned": False}))["question"]["pinned"]
        assert (await mod.call("question:pin", {"id": q2["id"]}))["ok"]

        # the creator goes live: an answer records the media clock of the broadcast
        status, minted = await creator.post("/api/rooms/maths/tokens", {"scope": "publish"})
        assert status == 201
        assert await publisher.publish("maths", minted["token"]) == 201, publisher.error
        broadcast = app[ROOMS].get("maths").broadcast.id
        ack = await mod.call("question:answer", {"id": q2["id"]})
        assert ack["ok"], ack
        answered = ack["question"]
        assert answered["status"] == "answered" and not answered["pinned"]
        assert isinstance(answered["answered_t_ms"], int) and answered["answered_t_ms"] >= 0
        assert answered["broadcast"] == broadcast and answered["t_ms"] == 0  # asked before it began
        await wait_for(lambda: updates(b, q2["id"])[-1]["status"] == "answered", timeout=3)
        assert updates(b, q2["id"])[-1] == answered
        assert refusal_code(await mod.call("question:answer", {"id": q2["id"]})) == "not_open"
        assert refusal_code(await mod.call("question:pin", {"id": q2["id"]})) == "not_open"
        assert refusal_code(await b.call("question:withdraw", {"id": q2["id"]})) == "not_open"
        room_id = (await app[PAYWALL].catalog.get("maths")).id
        chapters = await app[INTERACTION].questions.chapters(room_id, broadcast)
        assert [c["id"] for c in chapters] == [q2["id"]]

        ack = await mod.call("question:dismiss", {"id": q3["id"]})
        assert ack["ok"] and ack["question"]["status"] == "dismissed"
        assert refusal_code(await mod.call("question:dismiss", {"id": q3["id"]})) == "not_open"
        assert [q["id"] for q in (await a.call("question:list"))["items"]] == [q1["id"]]
        assert await publisher.delete() == 200
    finally:
        await publisher.close()
        await room.close()


async def order_status(api: Api, order_id: str) -> str:
    status, body = await api.get(f"/api/orders/{order_id}")
    assert status == 200, body
    return body["order"]["status"]


async def test_paid_questions_orders_checked_and_unanswered_ones_refunded_at_broadcast_end(paywall_app):
    base, app = paywall_app
    room, creator, mod, (alice, bob), (a, b) = await free_room_with_chats(base)
    await paid_room(creator, slug="physics", ticket_price=0)
    publisher = Publisher(base)
    try:
        order = await buy(alice, "maths", product="question", amount=500, message="about limits")
        ack = await a.call("question:ask", {"text": "what is a limit?", "order_id": order["id"]})
        assert ack["ok"], ack
        paid = ack["question"]
        assert paid["paid"] and (paid["paid_amount"], paid["currency"]) == (500, "USD")
        assert "order_id" not in paid

        # an order is used once, by its buyer, in its room, for a question, once paid
        assert refusal_code(await a.call("question:ask", {"text": "again", "order_id": order["id"]})) == "order_used"
        assert refusal_code(await b.call("question:ask", {"text": "mine?", "order_id": order["id"]})) == "order_not_found"
        assert refusal_code(await a.call("question:ask", {"text": "?", "order_id": "0" * 24})) == "order_not_found"
        status, pending = await alice.post("/api/orders", {"room": "maths", "product": "question", "amount": 500,
                                                           "idempotency_key": secrets.token_hex(8)})
        assert status == 201 and pending["order"]["status"] == "pending"
        assert refusal_code(await a.call("question:ask", {"text": "?", "order_id": pending["order"]["id"]})) == "order_not_paid"
        tip = await buy(alice, "maths", product="tip", amount=500)
        assert refusal_code(await a.call("question:ask", {"text": "?", "order_id": tip["id"]})) == "wrong_product"
        elsewhere = await buy(alice, "physics", product="question", amount=500)
        assert refusal_code(await a.call("question:ask", {"text": "?", "order_id": elsewhere["id"]})) == "order_not_found"
        assert refusal_code(await a.call("question:withdraw", {"id": paid["id"]})) == "paid_question"
        assert [q["id"] for q in (await b.call("question:list"))["items"]] == [paid["id"]]

        # live: one paid question answered (kept), one dismissed (refunded now), one left open
        status, minted = await creator.post("/api/rooms/maths/tokens", {"scope": "publish"})
        assert await publisher.publish("maths", minted["token"]) == 201, publisher.error
        kept_order = await buy(bob, "maths", product="question", amount=1000)
        kept = (await b.call("question:ask", {"text": "answered", "order_id": kept_order["id"]}))["question"]
        dismissed_order = await buy(bob, "maths", product="question", amount=700)
        dismissed = (await b.call("question:ask", {"text": "dismissed", "order_id": dismissed_order["id"]}))["question"]
        free = (await b.call("question:ask", {"text": "a free one"}))["question"]
        assert [q["id"] for q in (await b.call("question:list"))["items"]] == [
            kept["id"], dismissed["id"], paid["id"], free["id"]]
        assert (await mod.call("question:answer", {"id": kept["id"]}))["question"]["status"] == "answered"
        ack = await mod.call("question:dismiss", {"id": dismissed["id"]})
        assert ack["ok"] and ack["question"]["status"] == "refunded", ack
        assert await order_status(bob, dismissed_order["id"]) == "refunded"

        assert await publisher.delete() == 200
        await wait_for(lambda: updates(b, paid["id"])[-1]["status"] == "refunded", timeout=5)
        assert await order_status(alice, order["id"]) == "refunded"
        assert await order_status(bob, kept_order["id"]) == "paid"
        assert await order_status(alice, elsewhere["id"]) == "paid"
        assert [q["id"] for q in (await b.call("question:list"))["items"]] == [free["id"]]
        assert refusal_code(await mod.call("question:answer", {"id": paid["id"]})) == "not_open"

        # the ledger: every refund reversed its legs; the creator earned 90% of the answered one
        admin = await Api.sign_up(base)
        await app[PAYWALL].accounts.set_role(admin.user["email"], "admin")
        status, ledger = await admin.get("/api/admin/ledger")
        assert status == 200 and ledger["balanced"], ledger
        status, earnings = await creator.get("/api/creator/earnings")
        maths = next(e for e in earnings["earnings"] if e["room"] == "maths")
        assert maths["earned"] == 900 + 450  # the answered question and the tip
        # a second end of broadcast changes nothing
        publisher2 = Publisher(base)
        try:
            assert await publisher2.publish("maths", minted["token"]) == 201
            assert await publisher2.delete() == 200
        finally:
            await publisher2.close()
        assert await order_status(bob, kept_order["id"]) == "paid"
    finally:
        await publisher.close()
        await room.close()


async def test_concurrent_requests_cannot_double_vote_reuse_an_order_or_pin_twice(paywall_app):
    base, app = paywall_app
    room, creator, mod, (alice, bob), (a, b) = await free_room_with_chats(base)
    try:
        a2, b2, mod2 = await room.connect(alice), await room.connect(bob), await room.connect(creator)
        order = await buy(alice, "maths", product="question", amount=500)
        acks = await asyncio.gather(*(chat.call("question:ask", {"text": f"race {i}", "order_id": order["id"]})
                                      for i, chat in enumerate((a, a2, a, a2))))
        assert sorted(x["ok"] for x in acks) == [False, False, False, True], acks
        assert {refusal_code(x) for x in acks if not x["ok"]} == {"order_used"}
        q = next(x["question"] for x in acks if x["ok"])
        acks = await asyncio.gather(*(chat.call("question:vote", {"id": q["id"]}) for chat in (b, b2, b, b2)))
        assert sorted(x["ok"] for x in acks) == [False, False, False, True], acks
        free = (await b.call("question:ask", {"text": "free"}))["question"]
        await asyncio.gather(mod.call("question:pin", {"id": q["id"]}), mod2.call("question:pin", {"id": free["id"]}))
        items = (await a.call("question:list"))["items"]
        assert [x["votes"] for x in items] == [1, 0] and sum(x["pinned"] for x in items) == 1
        acks = await asyncio.gather(mod.call("question:answer", {"id": q["id"]}),
                                    mod2.call("question:dismiss", {"id": q["id"]}))
        assert sorted(x["ok"] for x in acks) == [False, True], acks
        assert await order_status(alice, order["id"]) == ("paid" if acks[0]["ok"] else "refunded")
    finally:
        await room.close()
