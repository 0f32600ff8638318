"""Helpers of the passes tests (subscriptions, series): a creator's plan, buying a pass with the
dev checkout, the ledger's balance as an admin sees it."""

from __future__ import annotations

import secrets
from typing import Any

from paywall.http import PAYWALL
from tests.support.paywall_fixtures import Api


async def monthly_plan(creator: Api, price: int = 1500, currency: str = "USD", interval: str = "month") -> dict:
    status, body = await creator.call("PUT", f"/api/creator/plans/{interval}", {"price": price, "currency": currency})
    assert status == 200, body
    return body["plan"]


async def start_pass(buyer: Api, **fields: Any) -> dict:
    status, body = await buyer.post("/api/passes", {"idempotency_key": secrets.token_hex(8), **fields})
    assert status == 201, body
    return body["pass"]


async def dev_pass(buyer: Api, pass_id: str, action: str = "confirm") -> dict:
    status, body = await buyer.post(f"/pay/dev/passes/{pass_id}", {"action": action})
    assert status == 200, body
    return body["pass"]


async def admin_of(base: str, app) -> Api:
    api = await Api.sign_up(base, "viewer")
    await app[PAYWALL].accounts.set_role(api.user["email"], "admin")
    return api


async def ledger(admin: Api) -> dict:
    """The admin's ledger: ``{(account, currency): balance}``, asserting that it balances."""
    status, body = await admin.get("/api/admin/ledger")
    assert status == 200 and body["balanced"], body
    assert sum(a["balance"] for a in body["accounts"]) == 0
    return {(a["account"], a["currency"]): a["balance"] for a in body["accounts"]}
