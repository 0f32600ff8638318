"""Tips: a viewer pays a ``tip`` order (paywall), then announces it to the room once.

``tip:announce {order_id}`` checks the order is PAID, of product ``tip``, bought by this
user for this room, and not announced before; the room then gets ``tip {user, amount,
currency, message, message_hidden, pin_seconds, broadcast, t_ms}``. ``message`` is the
order's message (at most 500 characters, plain text: pages render it as text, never HTML);
it is hidden (``""``, ``message_hidden: true``) when the tipper is muted or it contains a
blocked word: the tip itself is still announced, the money is already paid.

Announced once: a claim per order in the ``Cluster`` (``set_if_absent``, kept 90 days):
on one node it holds until a restart (there is no column for it in the schema); with
Redis across nodes and restarts. Each node also remembers the orders it announced, so
while Redis is unreachable an order is still announced at most once per node.
"""

from __future__ import annotations

import logging
from typing import Any

from core.cluster import Cluster
from paywall.db import Database
from paywall.order_facts import paid_order

from core.access import Refusal

from .server import Client, InteractionServer

__all__ = ["TipService", "pin_seconds"]

log = logging.getLogger("stagepass.tips")

MAX_MESSAGE = 500
REMEMBER_SECONDS = 90 * 86400  # how long the cluster remembers an announced order
# (amount below, in minor units -> seconds pinned), like YouTube Super Chat tiers
PIN_TIERS = ((200, 0), (500, 30), (1000, 60), (5000, 300), (10000, 900))
PIN_MAX = 3600


def pin_seconds(amount: int) -> int:
    """How long a tip stays pinned on screen, growing with its amount (minor units):
    under 200: 0 (not pinned), under 500: 30 s, under 1000: 60 s, under 5000: 5 min,
    under 10000: 15 min, from 10000: 1 h. Monotonic; the same table for every currency
    (for zero-decimal currencies such as JPY the thresholds are therefore small)."""
    for below, seconds in PIN_TIERS:
        if amount < below:
            return seconds
    return PIN_MAX


class TipService:
    def __init__(self, server: InteractionServer, cluster: Cluster) -> None:
        self.server = server
        self.cluster = cluster
        self._announced: set[str] = set()
        server.on("tip:announce", self.announce)

    @property
    def db(self) -> Database:
        return self.server.db

    async def announce(self, client: Client, data: Any) -> dict:
        order_id = data.get("order_id") if isinstance(data, dict) else None
        if not isinstance(order_id, str) or not 1 <= len(order_id) <= 32:
            raise Refusal(400, "invalid_payload", "send {order_id} of your paid tip")
        async with self.db() as s:
            order = await paid_order(s, order_id, client.user_id, client.room_id, "tip")
        message, hidden = await self._message(client, order.message or "")
        if not await self._claim(order_id):
            raise Refusal(409, "already_announced", "this tip was already announced")
        broadcast, t_ms = self.server.t_ms(client.room)
        tip = {
            "user": client.public(), "amount": order.amount, "currency": order.currency,
            "message": message, "message_hidden": hidden, "pin_seconds": pin_seconds(order.amount),
            "broadcast": broadcast, "t_ms": t_ms,
        }
        await self.server.emit_room(client.room, "tip", tip)
        log.info("tip %s announced: user %d, room %s, %d %s", order_id, client.user_id, client.room,
                 order.amount, order.currency)
        return {"tip": tip}

    async def _message(self, client: Client, text: str) -> tuple[str, bool]:
        """The order's message, or ("", True) from a muted user or with a blocked word."""
        text = text[:MAX_MESSAGE]
        moderation = self.server.moderation
        if not text or moderation is None:
            return text, False
        if await moderation.muted_until(client.room_id, client.user_id) is not None:
            return "", True
        lowered = text.lower()
        if any(word in lowered for word in await moderation.blocked_words(client.room_id)):
            return "", True
        return text, False

    async def _claim(self, order_id: str) -> bool:
        """True the first time an order is announced (in the cluster; on this node only
        while the cluster's store is unreachable)."""
        if order_id in self._announced:
            return False
        self._announced.add(order_id)
        try:
            return await self.cluster.set_if_absent(f"tip-announced:{order_id}", "1", ttl=REMEMBER_SECONDS)
        except Exception:
            log.warning("cluster unreachable: tip %s guarded on this node only", order_id, exc_info=True)
            return True
