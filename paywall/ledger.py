"""``Ledger``: double-entry bookkeeping of every paid and refunded order, pass charge
(a series bought, a subscription's period paid), and payouts.

Debits are positive, credits negative; the legs of one order (or payout) always sum to
zero. Accounts: ``cash:<provider>`` (money held by the payment provider for us),
``platform:fees`` (our revenue), ``creator:<user id>`` (what we owe a creator).
A refund posts the exact reverse of the payment; a payout debits the creator's account
and credits cash (the money left).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from .models import LedgerEntry, Order, Pass, PassCharge, Payout, Room
from .money import split_fee

__all__ = ["Ledger"]


class Ledger:
    def __init__(self, fee_bps: int) -> None:
        self.fee_bps = fee_bps

    def post_payment(self, s: AsyncSession, order: Order, creator_id: int) -> None:
        """Add the payment's legs to the caller's transaction."""
        self._post_legs(s, order.amount, order.currency, order.provider, creator_id, order_id=order.id)

    def post_charge(self, s: AsyncSession, charge: PassCharge, creator_id: int) -> None:
        """Add the legs of a pass charge (a series, one subscription period) to the caller's transaction."""
        self._post_legs(s, charge.amount, charge.currency, charge.provider, creator_id, charge_id=charge.id)

    def _post_legs(self, s: AsyncSession, total: int, currency: str, provider: str, creator_id: int,
                   **source: str) -> None:
        if total == 0:
            return
        fee, share = split_fee(total, self.fee_bps)
        for account, amount in ((f"cash:{provider}", total), ("platform:fees", -fee), (f"creator:{creator_id}", -share)):
            s.add(LedgerEntry(account=account, amount=amount, currency=currency, kind="payment", **source))

    async def post_refund(self, s: AsyncSession, order: Order) -> None:
        await self._reverse(s, order_id=order.id)

    async def post_charge_refund(self, s: AsyncSession, charge: PassCharge) -> None:
        await self._reverse(s, charge_id=charge.id)

    @staticmethod
    async def _reverse(s: AsyncSession, **source: str) -> None:
        """The exact reverse of a payment's legs."""
        [(column, value)] = source.items()
        legs = (await s.execute(
            select(LedgerEntry).where(getattr(LedgerEntry, column) == value, LedgerEntry.kind == "payment")
        )).scalars().all()
        for leg in legs:
            s.add(LedgerEntry(account=leg.account, amount=-leg.amount, currency=leg.currency, kind="refund", **source))

    @staticmethod
    def post_payout(s: AsyncSession, payout: Payout) -> None:
        """Add the payout's legs to the caller's transaction."""
        for account, amount in ((f"creator:{payout.creator_id}", payout.amount),
                                (f"cash:{payout.provider}", -payout.amount)):
            s.add(LedgerEntry(payout_id=payout.id, account=account, amount=amount,
                              currency=payout.currency, kind="payout"))

    @staticmethod
    async def unbalanced_orders(s: AsyncSession) -> list[str]:
        """Orders (pass charges, payouts) whose legs do not sum to zero (there must be none)."""
        source = func.coalesce(LedgerEntry.order_id, LedgerEntry.charge_id, LedgerEntry.payout_id)
        rows = await s.execute(
            select(source).group_by(source, LedgerEntry.currency).having(func.sum(LedgerEntry.amount) != 0)
        )
        return [r[0] for r in rows]

    @staticmethod
    async def creator_earnings(s: AsyncSession, creator_id: int) -> list[dict]:
        """Per room and currency: what the creator earned net of refunds (minor units)."""
        rows = await s.execute(
            select(Room.slug, LedgerEntry.currency, func.sum(LedgerEntry.amount), func.count(func.distinct(Order.id)))
            .join(Order, Order.id == LedgerEntry.order_id)
            .join(Room, Room.id == Order.room_id)
            .where(LedgerEntry.account == f"creator:{creator_id}")
            .group_by(Room.slug, LedgerEntry.currency)
            .order_by(Room.slug)
        )
        return [{"room": slug, "currency": cur, "earned": -int(total), "orders": n} for slug, cur, total, n in rows]

    @staticmethod
    async def creator_pass_earnings(s: AsyncSession, creator_id: int) -> list[dict]:
        """Per pass kind (``subscription``, ``series``) and currency: what the creator earned
        from passes, net of refunds, and how many charges."""
        rows = await s.execute(
            select(Pass.kind, LedgerEntry.currency, func.sum(LedgerEntry.amount), func.count(func.distinct(PassCharge.id)))
            .join(PassCharge, PassCharge.id == LedgerEntry.charge_id)
            .join(Pass, Pass.id == PassCharge.pass_id)
            .where(LedgerEntry.account == f"creator:{creator_id}")
            .group_by(Pass.kind, LedgerEntry.currency)
            .order_by(Pass.kind)
        )
        return [{"pass": kind, "currency": cur, "earned": -int(total), "charges": n} for kind, cur, total, n in rows]

    @staticmethod
    async def creator_balance(s: AsyncSession, creator_id: int) -> dict[str, int]:
        """What the platform owes the creator, per currency (earnings less refunds and payouts)."""
        rows = await s.execute(
            select(LedgerEntry.currency, func.sum(LedgerEntry.amount))
            .where(LedgerEntry.account == f"creator:{creator_id}")
            .group_by(LedgerEntry.currency).order_by(LedgerEntry.currency)
        )
        return {currency: -int(total) for currency, total in rows}

    @staticmethod
    async def totals(s: AsyncSession) -> list[dict]:
        """Balance of every account per currency (an admin's view)."""
        rows = await s.execute(
            select(LedgerEntry.account, LedgerEntry.currency, func.sum(LedgerEntry.amount))
            .group_by(LedgerEntry.account, LedgerEntry.currency)
            .order_by(LedgerEntry.account)
        )
        return [{"account": a, "currency": c, "balance": int(b)} for a, c, b in rows]
