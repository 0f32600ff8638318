"""The ``server`` section: where the server listens, its data, logs, secrets and engines."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from core.settings.parsing import ConfigError, parse_list, pool_parser

__all__ = ["ServerSettings"]

MAX_POOL = 1000  #: connections one pool setting accepts (PostgreSQL's max_connections is 100 by default)


@dataclass
class ServerSettings:
    """Where the server listens, its data, logs, secrets and the engines it uses."""

    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=8080, metadata={"help": "HTTP port"})
    data_dir: Path = field(
        default=Path("data"), metadata={"help": "where recordings, keys and the database live"}
    )
    log_level: str = field(default="INFO", metadata={"help": "DEBUG, INFO, WARNING or ERROR"})
    log_format: str = field(
        default="text",
        metadata={"help": "'text' (one readable line) or 'json' (one object a line: room, session, user as fields)"},
    )
    public_url: str = field(
        default="",
        metadata={"help": "the address users reach the server at, e.g. https://live.example.org behind a "
                          "TLS proxy: payment return URLs, the studio's WHIP URL, Secure cookies; "
                          "empty: taken from each request"},
    )
    cors_origin: str = field(
        default="*", metadata={"help": "Access-Control-Allow-Origin for WHIP/WHEP"}
    )
    secret: str = field(
        default="",
        metadata={"help": "signing secret for access tokens (>= 32 chars); empty: generated into DATA_DIR/secret.key"},
    )
    trusted_proxies: list[str] = field(
        default_factory=list,
        metadata={"help": "addresses or networks of reverse proxies whose X-Forwarded-For names the client "
                          "(for per-client limits), comma separated; none by default",
                  "parse": parse_list},
    )
    database_url: str = field(
        default="",
        metadata={"help": "empty: SQLite in DATA_DIR; or postgresql://user@host/db (also DATABASE_URL)",
                  "alias": "DATABASE_URL"},
    )
    db_pool_size: int = field(
        default=5,
        metadata={"help": "PostgreSQL connections the control plane keeps open (SQLAlchemy's pool_size; SQLite "
                          "keeps SQLAlchemy's default pool: its connections take no server slot)",
                  "parse": pool_parser(1)},
    )
    db_max_overflow: int = field(
        default=10,
        metadata={"help": "PostgreSQL connections the control plane may open past db_pool_size under load, "
                          "closed when returned", "parse": pool_parser(0)},
    )
    worker_db_pool_size: int = field(
        default=2,
        metadata={"help": "PostgreSQL connections each interaction worker keeps open (its write-behind danmaku "
                          "batches, token and moderation checks); the node logs at start the most it may open "
                          "and warns when PostgreSQL's max_connections is lower", "parse": pool_parser(1)},
    )
    worker_db_max_overflow: int = field(
        default=2,
        metadata={"help": "PostgreSQL connections each interaction worker may open past worker_db_pool_size "
                          "under load", "parse": pool_parser(0)},
    )
    redis_url: str = field(
        default="",
        metadata={"help": "redis://host:6379/0 to share seats (and later chat) across nodes (also REDIS_URL)",
                  "alias": "REDIS_URL"},
    )
    node_heartbeat_seconds: float = field(
        default=5.0,
        metadata={"help": "seconds between a node's heartbeats in the registry; a node silent for three "
                          "is dropped and its rooms' origins freed"},
    )

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port: {self.port} is not a TCP port")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"log_level: unknown level {self.log_level!r}")
        self.log_level = self.log_level.upper()
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"log_format: 'text' or 'json', not {self.log_format!r}")
        if self.public_url:
            self.public_url = self.public_url.rstrip("/")
            if not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", self.public_url):
                raise ConfigError("public_url: an http:// or https:// address, e.g. https://live.example.org")
        if self.database_url and not re.match(r"^(sqlite|postgres|postgresql)(\+\w+)?://", self.database_url):
            raise ConfigError("database_url: use sqlite:///path or postgresql://user@host/db")
        for name, least in (("db_pool_size", 1), ("db_max_overflow", 0), ("worker_db_pool_size", 1),
                            ("worker_db_max_overflow", 0)):
            value = getattr(self, name)
            if not least <= value <= MAX_POOL:
                raise ConfigError(f"{name}: {least} to {MAX_POOL} connections, got {value}")
        if self.redis_url and not re.match(r"^rediss?://", self.redis_url):
            raise ConfigError("redis_url: use redis://host:port/db")
        if not 0.05 <= self.node_heartbeat_seconds <= 60:
            raise ConfigError("node_heartbeat_seconds: between 0.05 and 60")
        if self.secret and len(self.secret) < 32:
            raise ConfigError("secret: at least 32 characters")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ConfigError(f"trusted_proxies: {proxy!r} is not an IP address or network") from None
