"""What other packages (tips, paid questions) read of an order to use it: ``OrderFacts``,
read in the caller's own transaction, and ``paid_order``, the refusals a buyer gets for an
order that is not their paid one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.access import Refusal
from .models import Order

__all__ = ["OrderFacts", "order_facts", "paid_order"]


@dataclass(frozen=True)
class OrderFacts:
    """What another package (tips, paid questions) needs to know of an order to use it."""

    id: str
    user_id: int
    room_id: int
    product: str
    status: str
    amount: int
    currency: str
    message: str


async def order_facts(session: AsyncSession, order_id: str, lock: bool = False) -> Optional[OrderFacts]:
    """The order ``order_id`` read in the caller's transaction (``lock``: held until it commits,
    so a paid order is used once even across nodes on PostgreSQL); None if there is none."""
    query = select(Order).where(Order.id == order_id)
    order = (await session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()
    if order is None:
        return None
    return OrderFacts(order.id, order.user_id, order.room_id, order.product, order.status, order.amount,
                      order.currency, order.message or "")


async def paid_order(session: AsyncSession, order_id: str, user_id: int, room_id: int, product: str,
                     lock: bool = False) -> OrderFacts:
    """The order ``order_id`` (as ``order_facts`` reads it) if it is ``user_id``'s paid ``product``
    order for room ``room_id``; else the refusal the buyer gets: 404 ``order_not_found`` (none,
    or another user's or room's), 400 ``wrong_product``, 409 ``order_not_paid``."""
    order = await order_facts(session, order_id, lock=lock)
    if order is None or order.user_id != user_id or order.room_id != room_id:
        raise Refusal(404, "order_not_found", "no such order of yours for this room")
    if order.product != product:
        raise Refusal(400, "wrong_product", f"order {order_id} is a {order.product}, not a {product}")
    if order.status != "paid":
        raise Refusal(409, "order_not_paid", f"order {order_id} is {order.status}, not paid")
    return order
