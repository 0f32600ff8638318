"""``Plans``: a creator's subscription offers, one per interval (``month``, ``year``).

A plan's price applies to subscriptions started after it is set; running subscriptions keep
the price they were bought at (Stripe renews them with theirs).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from core.access import Refusal

from .accounts import UserView
from .db import Database
from .models import Plan
from .money import check_amount, check_currency

__all__ = ["INTERVALS", "Plans", "plan_dict"]

INTERVALS = ("month", "year")


def plan_dict(plan: Plan) -> dict:
    return {"creator_id": plan.creator_id, "interval": plan.interval, "price": plan.price,
            "currency": plan.currency, "active": plan.active}


class Plans:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, user: UserView, interval: str, data: dict[str, Any]) -> dict:
        """Create or change the creator's plan for ``interval``: ``{price, currency, active?}``."""
        if user.role not in ("creator", "admin"):
            raise Refusal(403, "not_a_creator", "only creators offer subscriptions")
        if interval not in INTERVALS:
            raise Refusal(404, "interval_not_found", "plans are per 'month' or 'year'")
        unknown = set(data) - {"price", "currency", "active"}
        if unknown:
            raise Refusal(400, "unknown_field", f"unknown field(s): {', '.join(sorted(unknown))}")
        price = check_amount(data.get("price"), field="price")
        currency = check_currency(data.get("currency"))
        active = data.get("active", True)
        if not isinstance(active, bool):
            raise Refusal(400, "invalid_active", "active: true or false")
        async with self.db() as s:
            plan = (await s.execute(select(Plan).where(Plan.creator_id == user.id, Plan.interval == interval))
                    ).scalar_one_or_none()
            if plan is None:
                plan = Plan(creator_id=user.id, interval=interval)
                s.add(plan)
            plan.price, plan.currency, plan.active = price, currency, active
            await s.commit()
        return plan_dict(plan)

    async def of_creator(self, creator_id: int, active_only: bool = True) -> list[dict]:
        async with self.db() as s:
            query = select(Plan).where(Plan.creator_id == creator_id).order_by(Plan.interval)
            if active_only:
                query = query.where(Plan.active)
            return [plan_dict(p) for p in (await s.execute(query)).scalars()]

    async def offered(self, creator_id: int, interval: Any) -> Plan:
        """The active plan a buyer asks for; 404 when the creator offers none."""
        if interval not in INTERVALS:
            raise Refusal(400, "invalid_interval", "interval: 'month' or 'year'")
        async with self.db() as s:
            plan = (await s.execute(select(Plan).where(Plan.creator_id == creator_id, Plan.interval == interval,
                                                       Plan.active))).scalar_one_or_none()
        if plan is None:
            raise Refusal(404, "plan_not_found", f"this creator offers no {interval}ly subscription")
        return plan
