"""``Insight``: the insight services of one node wired over the paywall's database."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Optional

from core.cluster import Cluster
from core.settings import Settings
from core.tasks import TaskOwner
from core.timeutil import utcnow
from paywall.service import Paywall
from paywall.table_writer import table_writer

from .at_risk import AtRisk
from .export import Exporter
from .models import BehaviourEvent
from .privacy import Privacy
from .reports import Reports
from .store import EventStore
from .suggestions import Suggestions

__all__ = ["Insight"]

log = logging.getLogger("stagepass.insight")
PURGE_EVERY = 24 * 3600.0


class Insight:
    def __init__(self, settings: Settings, paywall: Paywall, cluster: Optional[Cluster] = None) -> None:
        """``cluster``: the interaction features' cluster, when it is the node's local bus the
        control plane writes its interaction workers' behaviour events (``table_writer``)."""
        self.settings = settings
        self.paywall = paywall
        self.db = paywall.db
        writer = table_writer(cluster, paywall.db, BehaviourEvent.__table__) if cluster is not None else None
        self.events = EventStore(paywall.db, flush_seconds=settings.insight.event_flush_ms / 1000, writer=writer)
        self.reports = Reports(paywall.db)
        self.exports = Exporter(self.reports, settings.signing_secret())
        self.suggestions = Suggestions(paywall.db)
        self.privacy = Privacy(paywall.db, paywall.accounts.passwords, paywall.orders.on_revoked, paywall.passes)
        self.at_risk = AtRisk(paywall.db, paywall.catalog, settings.server.data_dir / "insight" / "churn-model.joblib")
        self.tasks = TaskOwner(log)

    async def start(self) -> None:
        """Start writing events, report checkouts to them, and purge old ones daily."""
        self.paywall.use_events(self.events)
        await self.events.start()
        await self.suggestions.start()
        self.tasks.spawn(self._purge_daily(), name="behaviour-events-retention")

    async def purge_expired(self) -> int:
        """Delete raw events older than ``event_retention_days``; how many were deleted."""
        cutoff = utcnow() - dt.timedelta(days=self.settings.insight.event_retention_days)
        deleted = await self.events.purge(cutoff)
        if deleted:
            log.info("behaviour events: %d older than %d days deleted", deleted, self.settings.insight.event_retention_days)
        return deleted

    async def _purge_daily(self) -> None:
        while True:
            try:
                await self.purge_expired()
            except Exception:
                log.exception("behaviour events: the retention purge failed; next try in a day")
            await asyncio.sleep(PURGE_EVERY)

    async def close(self) -> None:
        await self.tasks.close()
        await self.suggestions.close()
        await self.events.close()
