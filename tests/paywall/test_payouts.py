"""Payouts: an admin records money sent to a creator; the ledger stays balanced, the
creator's balance drops by exactly that, never below zero, and bad input changes nothing."""

from __future__ import annotations

import asyncio

from tests.support.paywall_fixtures import Api, admin_of, buy, paid_room
import pytest

pytestmark = pytest.mark.inprocess


async def test_payouts_reduce_the_balance_and_keep_the_ledger_balanced(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)  # 9.90 USD tickets, 10 % platform fee
    for _ in range(2):
        await buy(await Api.sign_up(base), "maths")
    admin = await admin_of(base, app)
    cid = creator.user["id"]
    dash = (await creator.get("/api/creator/dashboard"))[1]
    assert dash["balance"] == [{"currency": "USD", "amount": 2 * 891}] and dash["payouts"] == []

    status, body = await admin.post("/api/admin/payouts", {"creator_id": cid, "amount": 1000, "currency": "usd",
                                                           "reference": "  SEPA 2026-11-23/001 "})
    assert status == 201, body
    payout = body["payout"]
    assert (payout["amount"], payout["currency"], payout["provider"], payout["reference"]) == \
        (1000, "USD", "dev", "SEPA 2026-11-23/001")

    dash = (await creator.get("/api/creator/dashboard"))[1]
    assert dash["balance"] == [{"currency": "USD", "amount": 2 * 891 - 1000}]
    assert [p["id"] for p in dash["payouts"]] == [payout["id"]]
    assert dash["rooms"][0]["earnings"] == [{"currency": "USD", "amount": 2 * 891}]  # earned, not paid out
    assert (await creator.get("/api/creator/payouts"))[1]["payouts"] == dash["payouts"]
    status, ledger = await admin.get("/api/admin/ledger")
    assert ledger["balanced"] is True, ledger
    accounts = {(a["account"], a["currency"]): a["balance"] for a in ledger["accounts"]}
    assert accounts[(f"creator:{cid}", "USD")] == -(2 * 891 - 1000)
    assert accounts[("cash:dev", "USD")] == 2 * 990 - 1000

    # never more than the balance, in that currency
    for amount, currency in [(2 * 891 - 1000 + 1, "USD"), (1, "EUR")]:
        status, body = await admin.post("/api/admin/payouts", {"creator_id": cid, "amount": amount,
                                                               "currency": currency, "reference": "x"})
        assert (status, body["error"]["code"]) == (409, "insufficient_balance"), body
    status, _ = await admin.post("/api/admin/payouts", {"creator_id": cid, "amount": 2 * 891 - 1000,
                                                        "currency": "USD", "reference": "the rest"})
    assert status == 201
    assert (await creator.get("/api/creator/dashboard"))[1]["balance"] == [{"currency": "USD", "amount": 0}]


async def test_payout_input_is_checked_and_changes_nothing(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    await buy(await Api.sign_up(base), "maths")
    admin = await admin_of(base, app)
    cid = creator.user["id"]
    viewer = await Api.sign_up(base)
    good = {"creator_id": cid, "amount": 100, "currency": "USD", "reference": "ref"}
    assert (await Api(base).post("/api/admin/payouts", good))[0] == 401
    for who in (creator, viewer):
        status, body = await who.post("/api/admin/payouts", good)
        assert (status, body["error"]["code"]) == (403, "admin_only")
    cases = [
        ({**good, "amount": -5}, 400, "invalid_amount"),
        ({**good, "amount": 1.5}, 400, "invalid_amount"),
        ({**good, "amount": "100"}, 400, "invalid_amount"),
        ({**good, "amount": 0}, 400, "invalid_amount"),
        ({**good, "currency": "XXX"}, 400, "unknown_currency"),
        ({**good, "reference": ""}, 400, "invalid_reference"),
        ({**good, "reference": "r" * 201}, 400, "invalid_reference"),
        ({**good, "creator_id": "1"}, 400, "invalid_creator"),
        ({**good, "creator_id": True}, 400, "invalid_creator"),
        ({**good, "extra": 1}, 400, "unknown_field"),
        ({**good, "creator_id": viewer.user["id"]}, 404, "creator_not_found"),
        ({**good, "creator_id": 999999}, 404, "creator_not_found"),
    ]
    for body, status, code in cases:
        got, answer = await admin.post("/api/admin/payouts", body)
        assert (got, answer["error"]["code"]) == (status, code), body
    got, answer = await admin.call("POST", "/api/admin/payouts", raw=b"{not json", headers={"Content-Type": "application/json"})
    assert (got, answer["error"]["code"]) == (400, "bad_json")
    assert (await creator.get("/api/creator/payouts"))[1]["payouts"] == []
    assert (await viewer.get("/api/creator/payouts"))[0] == 403
    assert (await creator.get("/api/creator/dashboard"))[1]["balance"] == [{"currency": "USD", "amount": 891}]


async def test_concurrent_payouts_never_overdraw(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    await buy(await Api.sign_up(base), "maths")  # balance 891
    admin = await admin_of(base, app)
    body = {"creator_id": creator.user["id"], "amount": 600, "currency": "USD", "reference": "twice?"}
    results = await asyncio.gather(*(admin.post("/api/admin/payouts", body) for _ in range(4)))
    assert sorted(status for status, _ in results) == [201, 409, 409, 409], results
    assert (await creator.get("/api/creator/dashboard"))[1]["balance"] == [{"currency": "USD", "amount": 291}]
    assert (await admin.get("/api/admin/ledger"))[1]["balanced"] is True
