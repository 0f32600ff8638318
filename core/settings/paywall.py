"""The ``paywall`` section: accounts, payments, access tokens and the creator dashboard."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.settings.parsing import ConfigError, parse_bool

__all__ = ["PaywallSettings"]


@dataclass
class PaywallSettings:
    """Accounts, payments, access tokens and the creator dashboard."""

    signups_per_hour: int = field(
        default=10, metadata={"help": "sign-ups one client address may make per hour (0: no limit)"}
    )
    argon2_time_cost: int = field(
        default=3, metadata={"help": "argon2 passes per password hash (argon2-cffi's default, RFC 9106's low-memory "
                                     "profile); existing hashes keep their own cost"}
    )
    argon2_memory_kib: int = field(
        default=65536, metadata={"help": "KiB of memory per password hash (64 MiB by default); the test suite "
                                         "lowers both costs, a server should not"}
    )
    access_token_ttl: int = field(default=300, metadata={"help": "seconds an access token stays valid"})
    platform_fee_bps: int = field(
        default=1000, metadata={"help": "platform fee in basis points of each payment (1000 = 10%)"}
    )
    payment_provider: str = field(
        default="",
        metadata={"help": "'dev' (test mode: buyers confirm their own payments) or 'stripe'; empty: 'dev', "
                          "refused when PUBLIC_URL is https (set 'dev' explicitly to run test mode there)"},
    )
    stripe_api_key: str = field(default="", metadata={"help": "Stripe secret key (sk_...)"})
    stripe_webhook_secret: str = field(default="", metadata={"help": "Stripe webhook signing secret (whsec_...)"})
    review_unverified: bool = field(
        default=True,
        metadata={"help": "rooms of creators an admin has not verified wait in the admin review queue before "
                          "they are listed or sold (on/off)", "parse": parse_bool},
    )
    subscription_grace: float = field(
        default=21600.0,
        metadata={"help": "seconds a creator subscription still grants access after its paid period ends, while "
                          "the renewal's payment arrives (Stripe pays a renewal invoice about an hour after the "
                          "period ends); a failed renewal (past_due) ends access at once"},
    )
    audience_sample_seconds: float = field(
        default=5.0,
        metadata={"help": "seconds between samples of each live paid room's concurrent viewers (dashboard)"},
    )

    def validate(self) -> None:
        if self.signups_per_hour < 0:
            raise ConfigError("signups_per_hour: 0 (no limit) or more")
        if not 1 <= self.argon2_time_cost <= 20:
            raise ConfigError("argon2_time_cost: 1 to 20 passes")
        if not 1024 <= self.argon2_memory_kib <= 4194304:
            raise ConfigError("argon2_memory_kib: 1024 to 4194304 KiB")
        if not 30 <= self.access_token_ttl <= 86400:
            raise ConfigError("access_token_ttl: 30 to 86400 seconds")
        if not 0 <= self.platform_fee_bps <= 10000:
            raise ConfigError("platform_fee_bps: 0 to 10000")
        if not 0 <= self.subscription_grace <= 7 * 86400:
            raise ConfigError("subscription_grace: 0 to 604800 seconds")
        if not 0.1 <= self.audience_sample_seconds <= 3600:
            raise ConfigError("audience_sample_seconds: 0.1 to 3600")
        if self.payment_provider not in ("", "dev", "stripe"):
            raise ConfigError("payment_provider: 'dev' or 'stripe'")
        if self.payment_provider == "stripe" and not (self.stripe_api_key and self.stripe_webhook_secret):
            raise ConfigError("payment_provider stripe needs stripe_api_key and stripe_webhook_secret")

    @property
    def test_mode_payments(self) -> bool:
        """True with the ``dev`` provider (also when it is the default): no money moves."""
        return self.payment_provider != "stripe"
