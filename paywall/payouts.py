"""``Payouts``: money paid out to creators, recorded as balanced ledger transactions.

A creator's balance is what the ``creator:<id>`` account says the platform owes them
(their share of every payment, less refunds and earlier payouts). An admin records a
payout once the money was sent (a bank transfer, a Stripe Connect transfer...): its legs
debit ``creator:<id>`` and credit ``cash:<provider>``, so the ledger stays balanced and
the balance drops by exactly that amount. A payout can never exceed the balance in its
currency; two recorded at once for the same creator are serialized (a row lock on the
creator in PostgreSQL, and a lock in this process for SQLite).
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from sqlalchemy import select

from .accounts import UserView
from .db import Database
from core.access import Refusal
from .ledger import Ledger
from .models import Payout, User
from .money import check_amount, check_currency
from core.timeutil import as_utc

__all__ = ["Payouts"]

_FIELDS = {"creator_id", "amount", "currency", "reference"}


def _view(p: Payout) -> dict[str, Any]:
    return {
        "id": p.id, "creator_id": p.creator_id, "amount": p.amount, "currency": p.currency,
        "provider": p.provider, "reference": p.reference,
        "created_at": as_utc(p.created_at).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


class Payouts:
    def __init__(self, db: Database, ledger: Ledger, provider: str) -> None:
        self.db = db
        self.ledger = ledger
        self.provider = provider
        self._lock = asyncio.Lock()

    async def record(self, admin: UserView, data: dict[str, Any]) -> dict[str, Any]:
        """Record a payout made to a creator (admins only)."""
        if admin.role != "admin":
            raise Refusal(403, "admin_only", "only admins record payouts")
        unknown = set(data) - _FIELDS
        if unknown:
            raise Refusal(400, "unknown_field", f"unknown field(s): {', '.join(sorted(unknown))}")
        creator_id = data.get("creator_id")
        if not isinstance(creator_id, int) or isinstance(creator_id, bool) or not 1 <= creator_id < 2**31:
            raise Refusal(400, "invalid_creator", "creator_id: the creator's user id")
        amount = check_amount(data.get("amount"))
        currency = check_currency(data.get("currency"))
        reference = data.get("reference")
        if not isinstance(reference, str) or not 1 <= len(reference.strip()) <= 200:
            raise Refusal(400, "invalid_reference", "reference: 1 to 200 characters (the transfer's reference)")
        async with self._lock, self.db() as s:
            creator = (await s.execute(select(User).where(User.id == creator_id).with_for_update())).scalar_one_or_none()
            if creator is None or creator.role not in ("creator", "admin"):
                raise Refusal(404, "creator_not_found", "no such creator")
            owed = (await Ledger.creator_balance(s, creator_id)).get(currency, 0)
            if amount > owed:
                raise Refusal(409, "insufficient_balance",
                                   f"the creator's balance is {owed} {currency} (minor units); cannot pay out {amount}")
            payout = Payout(id=secrets.token_hex(16), creator_id=creator_id, amount=amount, currency=currency,
                            provider=self.provider, reference=reference.strip(), recorded_by=admin.id)
            s.add(payout)
            await s.flush()
            self.ledger.post_payout(s, payout)
            await s.commit()
            return _view(payout)

    async def of_creator(self, creator_id: int) -> list[dict[str, Any]]:
        """The creator's payouts, newest first."""
        async with self.db() as s:
            rows = (await s.execute(select(Payout).where(Payout.creator_id == creator_id)
                                    .order_by(Payout.created_at.desc(), Payout.id))).scalars().all()
        return [_view(p) for p in rows]
