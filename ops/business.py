"""Business figures for /metrics that live in the database: orders by product, provider
and status. Counted every ``interval`` seconds by a task (a scrape never waits for the
database), exported as gauges."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional

from sqlalchemy import func, select

from core.tasks import TaskOwner
from paywall.models import Order

__all__ = ["OrderCounts"]

log = logging.getLogger("stagepass.metrics")


class OrderCounts:
    def __init__(self, db: Any, interval: float = 15.0) -> None:
        self._db = db
        self.interval = interval
        #: (product, provider, status) -> orders; None until the first count
        self.counts: Optional[dict[tuple[str, str, str], int]] = None
        self._tasks = TaskOwner(log)

    async def count(self) -> dict[tuple[str, str, str], int]:
        query = (select(Order.product, Order.provider, Order.status, func.count())
                 .group_by(Order.product, Order.provider, Order.status))
        async with self._db() as s:
            rows = (await s.execute(query)).all()
        self.counts = {(product, provider, status): n for product, provider, status, n in rows}
        return self.counts

    def start(self) -> None:
        self._tasks.spawn(self._run(), name="order-counts")

    async def _run(self) -> None:
        while True:
            try:
                await self.count()
            except Exception:  # the database is down: /readyz says so; keep the last counts
                log.warning("counting orders for /metrics failed", exc_info=True)
            await asyncio.sleep(self.interval)

    async def close(self) -> None:
        await self._tasks.close()

    def metrics(self) -> Optional[dict]:
        """For ``LiveCollector``: one labelled gauge."""
        if self.counts is None:
            return None
        return {"stagepass_orders": ("gauge", "Orders by product, payment provider and status",
                                     [((("product", p), ("provider", v), ("status", s)), n)
                                      for (p, v, s), n in sorted(self.counts.items())])}
