"""The ``ops`` and ``insight`` sections, what is measured: /metrics for operators, behaviour events
for creators' analytics."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.settings.parsing import ConfigError

__all__ = ["OpsSettings", "InsightSettings"]


@dataclass
class OpsSettings:
    """What an operator scrapes: /metrics."""

    metrics_token: str = field(
        default="",
        metadata={"help": "bearer token that GET /metrics (Prometheus) requires; empty: /metrics answers 404"},
    )
    metrics_orders_seconds: float = field(
        default=15.0, metadata={"help": "seconds between counts of the orders by status for /metrics"}
    )

    def validate(self) -> None:
        if not 0.1 <= self.metrics_orders_seconds <= 3600:
            raise ConfigError("metrics_orders_seconds: 0.1 to 3600")
        if self.metrics_token and len(self.metrics_token) < 16:
            raise ConfigError("metrics_token: at least 16 characters (or empty: no /metrics)")


@dataclass
class InsightSettings:
    """Behaviour events and creator analytics."""

    event_flush_ms: int = field(
        default=1000,
        metadata={"help": "milliseconds between batched writes of behaviour events (page visits, joins, "
                          "replay progress...) to the database; 50 to 60000"},
    )
    event_retention_days: int = field(
        default=400,
        metadata={"help": "raw behaviour events older than this many days are deleted (daily); 1 to 3650"},
    )

    def validate(self) -> None:
        if not 50 <= self.event_flush_ms <= 60000:
            raise ConfigError("event_flush_ms: 50 to 60000")
        if not 1 <= self.event_retention_days <= 3650:
            raise ConfigError("event_retention_days: 1 to 3650")
