"""``Paywall``: the paywall's services wired together over one database."""

from __future__ import annotations

import logging
from typing import Awaitable, Callable, Mapping, Optional

from argon2 import PasswordHasher

from core.access import StreamKeyAccess
from core.behaviour import BehaviourSink
from core.mail import Mailer
from core.settings import ConfigError, Settings

from .access import PaywallAccess
from .accounts import Accounts
from .audit import AuditLog
from .audience import AudienceLog
from .catalog import Catalog
from .creators import CreatorPages
from .dashboard import CreatorDashboard
from .db import Database
from .db_budget import control_plane_pool, worker_pool
from .follows import Follows
from .ledger import Ledger
from .notifications import Notifications
from .orders import OrderBook
from .passwords import PasswordPool, weak_cost_warning
from .passes import PassBook
from .payouts import Payouts
from .plans import Plans
from .replays import ReplayAccess
from .reports import Reports
from .reviews import Reviews
from .series import SeriesCatalog
from .providers import DevProvider, PaymentProvider, StripeProvider
from .tokens import TokenIssuer
from .trust import Trust
from .webhooks import Webhooks

__all__ = ["Paywall"]

log = logging.getLogger("stagepass.paywall")


class Paywall:
    def __init__(self, settings: Settings, db: Database,
                 on_revoked: Optional[Callable[[int, str], Awaitable[None]]] = None,
                 provider: Optional[PaymentProvider] = None, open_rooms: Optional[Mapping[str, str]] = None) -> None:
        open_rooms = open_rooms or {}
        self.settings = settings
        self.db = db
        hasher = PasswordHasher(time_cost=settings.paywall.argon2_time_cost,
                                memory_cost=settings.paywall.argon2_memory_kib)
        self.accounts = Accounts(db, signups_per_hour=settings.paywall.signups_per_hour,
                                 passwords=PasswordPool(hasher=hasher))
        self.catalog = Catalog(db, reserved=open_rooms)
        self.ledger = Ledger(settings.paywall.platform_fee_bps)
        if provider is None:
            provider = (
                StripeProvider(settings.paywall.stripe_api_key, settings.paywall.stripe_webhook_secret)
                if settings.paywall.payment_provider == "stripe" else DevProvider()
            )
        self.provider = provider
        if provider.name == "dev":
            log.warning("TEST MODE PAYMENTS: the 'dev' payment provider lets buyers confirm their own orders and "
                        "no money moves; set STAGEPASS_PAYMENT_PROVIDER=stripe for real payments")
        self.orders = OrderBook(db, self.catalog, self.ledger, provider, on_revoked)
        self.orders.pass_grace = settings.paywall.subscription_grace
        self.follows = Follows(db)
        self.plans = Plans(db)
        self.series = SeriesCatalog(db)
        self.passes = PassBook(db, self.catalog, self.orders, self.ledger, provider, self.plans, self.series,
                               self.follows, on_revoked)
        self.tokens = TokenIssuer(settings.signing_secret(), ttl=settings.paywall.access_token_ttl)
        self.webhooks = Webhooks(db, self.orders, self.passes)
        self.replays = ReplayAccess(db, self.catalog, self.orders, self.tokens)
        #: the one door (``core.access.Door``): paywall rooms, replays, and the open rooms' stream keys
        self.access = PaywallAccess(db, self.catalog, self.orders, self.tokens, self.replays,
                                    open_rooms=StreamKeyAccess(open_rooms))
        self.audience = AudienceLog(db)
        self.payouts = Payouts(db, self.ledger, self.provider.name)
        self.dashboard = CreatorDashboard(db, self.audience, self.payouts)
        self.audit = AuditLog(db)
        self.reviews = Reviews(db, self.audit)
        self.reports = Reports(db, self.audit)
        self.trust = Trust(db, self.catalog, self.orders, self.audit, settings.paywall.review_unverified)
        self.creators = CreatorPages(db, self.catalog, self.follows, self.reviews)
        notify = settings.notifications
        self.notifications = Notifications(
            db, self.follows, settings.signing_secret(),
            settings.server.public_url or f"http://{settings.server.host}:{settings.server.port}",
            Mailer(notify.smtp_url, notify.mail_from) if notify.smtp_url else None, notify.reminder_minutes,
        )

    def use_events(self, events: BehaviourSink) -> None:
        """Report checkouts (started, completed, abandoned) to ``events``."""
        self.orders.events = events

    @classmethod
    async def open(cls, settings: Settings, worker: bool = False, **kwargs) -> "Paywall":
        """Connect, run the migrations, and wire the services. With ``open_rooms`` (the
        configuration's open rooms), a catalog room of the same name is a ``ConfigError``:
        one name, one room (else a paid room would be played as the open room). ``worker``: the
        database pool of an interaction worker (``paywall.db_budget``), else the control plane's."""
        pool, name = (worker_pool(settings), "stagepass interaction worker") if worker else (
            control_plane_pool(settings), "stagepass")
        weak = None if worker else weak_cost_warning(settings.paywall.argon2_time_cost,
                                                      settings.paywall.argon2_memory_kib)
        if weak is not None:  # once per node: the control plane's
            log.warning("%s", weak)
        db = Database(settings.database(), pool, application_name=name)
        try:
            await db.migrate()
            paywall = cls(settings, db, **kwargs)
            clashes = await paywall.catalog.named(paywall.catalog.reserved)
        except BaseException:
            await db.close()
            raise
        if clashes:
            await db.close()
            where = ("STAGEPASS_ROOMS" if settings.media.rooms else
                     f"the default open room, from {settings.server.data_dir / 'stream-keys.json'}: set "
                     "STAGEPASS_ROOMS to the open rooms you want")
            names = ", ".join(f"{r.slug!r} (created by user {r.creator_id})" for r in clashes)
            raise ConfigError(f"rooms: {names}: an open room of the configuration (anyone may watch) "
                              f"and a room of the paywall's database share the name; one name, one room. "
                              f"Remove it from the open rooms ({where})")
        return paywall

    async def close(self) -> None:
        await self.notifications.close()
        self.accounts.close()
        await self.db.close()
