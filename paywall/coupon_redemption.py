"""A coupon taken for an order, in the order's own transaction, and given back when the
order is declined. The use count goes up by a conditional update, so a capped coupon
cannot be over-used by concurrent buyers; the redemption row (unique per coupon and user)
makes it once per user: a second one fails the transaction's commit."""

from __future__ import annotations

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.access import Refusal
from core.timeutil import utcnow
from .models import Coupon, CouponRedemption, Order

__all__ = ["give_back_coupon", "redeem_coupon"]


async def redeem_coupon(s: AsyncSession, user_id: int, room_id: int, order: Order, code: str) -> tuple[int, int]:
    """Take one use of the room's coupon ``code`` for ``order`` (in ``s``, not committed):
    returns (the coupon's id, the discounted amount); 404 ``coupon_not_found``, 410
    ``coupon_disabled`` or ``coupon_expired``, 409 ``coupon_exhausted``."""
    coupon = (await s.execute(select(Coupon).where(Coupon.room_id == room_id, Coupon.code == code))).scalar_one_or_none()
    if coupon is None:
        raise Refusal(404, "coupon_not_found", f"no coupon {code!r} for this room")
    if not coupon.active:
        raise Refusal(410, "coupon_disabled", "this coupon was withdrawn by the room's creator")
    now = utcnow()
    taken = await s.execute(
        update(Coupon).execution_options(synchronize_session=False)
        .where(Coupon.id == coupon.id,
               or_(Coupon.max_uses.is_(None), Coupon.uses < Coupon.max_uses),
               or_(Coupon.expires_at.is_(None), Coupon.expires_at > now))
        .values(uses=Coupon.uses + 1)
    )
    if taken.rowcount != 1:
        await s.refresh(coupon)
        if coupon.max_uses is not None and coupon.uses >= coupon.max_uses:
            raise Refusal(409, "coupon_exhausted", "this coupon has been used up")
        raise Refusal(410, "coupon_expired", "this coupon has expired")
    s.add(CouponRedemption(coupon_id=coupon.id, user_id=user_id, order_id=order.id))
    if coupon.kind == "percent":
        discounted = order.list_amount - order.list_amount * coupon.value // 100
    else:
        discounted = max(0, order.list_amount - coupon.value)
    return coupon.id, discounted


async def give_back_coupon(s: AsyncSession, order: Order) -> None:
    """The use ``order`` took of its coupon (if any) is given back (in ``s``, not committed)."""
    if order.coupon_id is not None:
        await s.execute(delete(CouponRedemption).where(CouponRedemption.order_id == order.id))
        await s.execute(update(Coupon).execution_options(synchronize_session=False)
                        .where(Coupon.id == order.coupon_id).values(uses=Coupon.uses - 1))
