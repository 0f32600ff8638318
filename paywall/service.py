"""``Paywall``: the paywall's services wired together over one database."""

from __future__ import annotations

import logging
from typing import Awaitable, Callable, Optional

from mediaserver.config import Settings

from .access import PaywallPermissions
from .accounts import Accounts
from .audience import AudienceLog
from .catalog import Catalog
from .dashboard import CreatorDashboard
from .db import Database
from .ledger import Ledger
from .orders import OrderBook
from .payouts import Payouts
from .replays import ReplayAccess
from .providers import DevProvider, PaymentProvider, StripeProvider
from .tokens import TokenIssuer
from .webhooks import Webhooks

__all__ = ["Paywall"]

log = logging.getLogger("stagepass.paywall")


class Paywall:
    def __init__(self, settings: Settings, db: Database,
                 on_revoked: Optional[Callable[[int, str], Awaitable[None]]] = None,
                 provider: Optional[PaymentProvider] = None) -> None:
        self.settings = settings
        self.db = db
        self.accounts = Accounts(db, signups_per_hour=settings.signups_per_hour)
        self.catalog = Catalog(db)
        self.ledger = Ledger(settings.platform_fee_bps)
        if provider is None:
            provider = (
                StripeProvider(settings.stripe_api_key, settings.stripe_webhook_secret)
                if settings.payment_provider == "stripe" else DevProvider()
            )
        self.provider = provider
        if provider.name == "dev":
            log.warning("TEST MODE PAYMENTS: the 'dev' payment provider lets buyers confirm their own orders and "
                        "no money moves; set STAGEPASS_PAYMENT_PROVIDER=stripe for real payments")
        self.orders = OrderBook(db, self.catalog, self.ledger, provider, on_revoked)
        self.tokens = TokenIssuer(settings.signing_secret(), ttl=settings.access_token_ttl)
        self.access = PaywallPermissions(db, self.catalog, self.orders, self.tokens)
        self.webhooks = Webhooks(db, self.orders)
        self.replays = ReplayAccess(db, self.catalog, self.orders, self.tokens)
        self.audience = AudienceLog(db)
        self.payouts = Payouts(db, self.ledger, self.provider.name)
        self.dashboard = CreatorDashboard(db, self.audience, self.payouts)

    @classmethod
    async def open(cls, settings: Settings, **kwargs) -> "Paywall":
        """Connect, run the migrations, and wire the services."""
        db = Database(settings.database())
        await db.migrate()
        return cls(settings, db, **kwargs)

    async def close(self) -> None:
        self.accounts.close()
        await self.db.close()
