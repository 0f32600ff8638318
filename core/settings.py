"""One typed configuration for the whole server, nested per area.

``Settings`` holds one section per area (``server``, ``media``, ``recording``, ``paywall``,
``interaction``, ``ops``, ``insight``); each package reads its own section. Every setting has its default
here and nowhere else, an environment variable ``STAGEPASS_<NAME>`` and a CLI flag
``--<name>`` (names are unique across sections, so the variables did not change when the
settings were nested); the CLI flag wins over the environment. ``Settings.validate`` runs at
start and refuses nonsense with a message naming the setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

__all__ = ["ConfigError", "Settings", "ServerSettings", "MediaSettings", "RecordingSettings", "PaywallSettings",
           "InteractionSettings", "OpsSettings", "InsightSettings", "NotificationSettings", "ROOM_NAME_RE"]

ROOM_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class ConfigError(ValueError):
    """A setting has an invalid value."""


def _parse_rooms(text: str) -> dict[str, str]:
    """``"demo=key1,maths=key2"`` -> ``{"demo": "key1", "maths": "key2"}``."""
    rooms: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, key = item.partition("=")
        if not sep or not name or not key:
            raise ConfigError(f"rooms: expected NAME=STREAM_KEY, got {item!r}")
        rooms[name.strip()] = key.strip()
    return rooms


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected on or off, got {text!r}")


def _parse_workers(text: str) -> int:
    """A number of media workers, or ``cores`` (one per CPU core)."""
    value = text.strip().lower()
    if value == "cores":
        return max(1, len(os.sched_getaffinity(0)))
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"workers: expected a number or 'cores', got {text!r}") from None


def _parse_udp_port(text: str) -> str:
    """``off``, a port, or a range ``N-M`` (one port per media worker)."""
    value = text.strip().lower()
    if value == "off":
        return value
    first, _, last = value.partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        low = high = -1
    if not (0 <= low <= high <= 65535) or (low == 0 and high != 0):
        raise ConfigError(f"udp_port: expected a port, a range N-M or 'off', got {text!r}")
    return value


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
                  "parse": lambda s: [p.strip() for p in s.split(",") if p.strip()]},
    )
    database_url: str = field(
        default="",
        metadata={"help": "empty: SQLite in DATA_DIR; or postgresql://user@host/db (also DATABASE_URL)",
                  "alias": "DATABASE_URL"},
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


@dataclass
class MediaSettings:
    """The live media path: rooms, WebRTC, keyframes, viewers' queues."""

    rooms: dict[str, str] = field(
        default_factory=dict,
        metadata={
            "help": "rooms and their WHIP stream keys, NAME=KEY[,NAME=KEY]; empty: a room "
            "'demo' with a key generated into DATA_DIR/stream-keys.json",
            "parse": _parse_rooms,
        },
    )
    ice_servers: list[str] = field(
        default_factory=list,
        metadata={
            "help": "STUN/TURN URLs offered to peers, comma separated (none by default)",
            "parse": lambda s: [u.strip() for u in s.split(",") if u.strip()],
        },
    )
    udp_port: str = field(
        default="0",
        metadata={"help": "the UDP port every WebRTC peer of a media worker shares (ICE mux): N, or N-M "
                          "for several workers (worker i takes N+i); 0: a free port chosen at start; "
                          "'off': one port per peer connection, as aiortc does alone",
                  "parse": lambda s: _parse_udp_port(s)},
    )
    udp_host: str = field(
        default="0.0.0.0", metadata={"help": "address the shared UDP port binds (ICE mux)"}
    )
    public_ip: str = field(
        default="",
        metadata={"help": "the address peers reach the UDP port at, advertised in ICE candidates "
                          "(a host behind 1:1 NAT); empty: this host's own addresses"},
    )
    max_sdp_bytes: int = field(default=65536, metadata={"help": "largest accepted SDP body"})
    rtmp_port: int = field(
        default=1935,
        metadata={"help": "RTMP ingest port (rtmp://HOST:PORT/live, the room's stream key as the "
                          "stream name; on the HTTP host address); 0: no RTMP ingest"},
    )
    rtmp_audio_bitrate: int = field(
        default=64000,
        metadata={"help": "bit/s of the Opus audio an RTMP room's AAC is transcoded to (once per room)"},
    )
    low_rendition: bool = field(
        default=True,
        metadata={"help": "viewers on weak networks are switched to one low rendition per room (360p, "
                          "400 kbit/s, encoded only while someone watches it) or to audio only, from "
                          "their receiver reports and bandwidth estimates (on/off)", "parse": _parse_bool},
    )
    keyframe_min_interval: float = field(
        default=0.5,
        metadata={"help": "seconds between keyframe requests (PLI) sent to a publisher: "
                          "joins arriving together share one keyframe, at most 2 a second"},
    )
    subscriber_buffer_bytes: int = field(
        default=262144,
        metadata={
            "help": "bytes a viewer's socket may queue before it drops to the next keyframe"
        },
    )
    publisher_stale_seconds: float = field(
        default=5.0,
        metadata={
            "help": "a publisher that sent no media for this long may be replaced by a new one"
        },
    )
    connect_timeout: float = field(
        default=20.0, metadata={"help": "seconds a new WebRTC session has to connect"}
    )
    workers: int = field(
        default=1,
        metadata={"help": "media worker processes: 1 forwards media in the server's own process; N > 1 "
                          "runs N media workers (peer connections and fanouts) beside the control plane "
                          "(HTTP, signalling, paywall, Socket.IO); 'cores': one per CPU core",
                  "parse": lambda s: _parse_workers(s)},
    )

    def validate(self) -> None:
        for name, key in self.rooms.items():
            if not ROOM_NAME_RE.match(name):
                raise ConfigError(
                    f"rooms: {name!r} is not a room name (a-z, 0-9, '-', '_', 1-64 chars)"
                )
            if len(key) < 8:
                raise ConfigError(f"rooms: the stream key of {name!r} is shorter than 8")
        for url in self.ice_servers:
            if not re.match(r"^(stun|stuns|turn|turns):", url):
                raise ConfigError(f"ice_servers: {url!r} is not a stun:/turn: URL")
        self.udp_port = _parse_udp_port(str(self.udp_port))
        for name in ("udp_host", "public_ip"):
            if getattr(self, name):
                try:
                    ipaddress.ip_address(getattr(self, name))
                except ValueError:
                    raise ConfigError(f"{name}: {getattr(self, name)!r} is not an IP address") from None
        if not 0 <= self.rtmp_port <= 65535:
            raise ConfigError(f"rtmp_port: {self.rtmp_port} is not a TCP port (0: no RTMP ingest)")
        if not 6000 <= self.rtmp_audio_bitrate <= 510000:
            raise ConfigError("rtmp_audio_bitrate: Opus takes 6000 to 510000 bit/s")
        if not 1024 <= self.max_sdp_bytes <= 1 << 20:
            raise ConfigError("max_sdp_bytes: must be between 1024 and 1048576")
        for name in ("keyframe_min_interval", "publisher_stale_seconds", "connect_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be positive")
        if not 1 <= self.workers <= 256:
            raise ConfigError(f"workers: between 1 and 256 media workers, got {self.workers}")
        if self.workers > 1:
            self.udp_port_for(self.workers - 1)  # a fixed port or range must cover every worker
        if self.subscriber_buffer_bytes < 16384:
            raise ConfigError("subscriber_buffer_bytes: must be at least 16384")

    def udp_port_for(self, worker: int = 0) -> Optional[int]:
        """The shared UDP port of media worker ``worker`` (0 for a free one), or None when
        each peer connection binds its own ports (``udp_port=off``)."""
        if self.udp_port == "off":
            return None
        first, _, last = self.udp_port.partition("-")
        low, high = int(first), int(last or first)
        if low and not low + worker <= high:
            raise ConfigError(f"udp_port: the range {self.udp_port} has no port for worker {worker}")
        return low + worker if low else 0


@dataclass
class RecordingSettings:
    """Recording while live and where finished replays are stored."""

    recordings: bool = field(
        default=True,
        metadata={
            "help": "record every broadcast into DATA_DIR/recordings (on/off)",
            "parse": _parse_bool,
        },
    )
    recording_keyframe_interval: float = field(
        default=4.0,
        metadata={
            "help": "while recording H.264, ask for a keyframe when the last is this many "
                    "seconds old, so the replay is remuxed, not re-encoded (0: never)",
        },
    )
    storage_url: str = field(
        default="",
        metadata={"help": "where finished replays live: empty or file:// (DATA_DIR/recordings on this disk), "
                          "or s3://BUCKET/PREFIX (S3-compatible object storage; endpoint and credentials from "
                          "AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION)"},
    )
    storage_proxy: bool = field(
        default=False,
        metadata={"help": "stream stored replay files through this node (with Range) instead of redirecting "
                          "browsers to short-lived presigned URLs, for buckets browsers cannot reach",
                  "parse": _parse_bool},
    )
    keep_local: bool = field(
        default=False,
        metadata={"help": "keep the local media of a replay after it is uploaded to object storage",
                  "parse": _parse_bool},
    )

    def validate(self) -> None:
        if self.recording_keyframe_interval < 0:
            raise ConfigError("recording_keyframe_interval: 0 (off) or more seconds")


@dataclass
class PaywallSettings:
    """Accounts, payments, access tokens and the creator dashboard."""

    signups_per_hour: int = field(
        default=10, metadata={"help": "sign-ups one client address may make per hour (0: no limit)"}
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
                          "they are listed or sold (on/off)", "parse": _parse_bool},
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


@dataclass
class InteractionSettings:
    """Danmaku and the room's chat limits."""

    danmaku_max_chars: int = field(default=100, metadata={"help": "longest danmaku accepted"})
    danmaku_user_rate: float = field(default=1.0, metadata={"help": "danmaku per second a user may send (sustained)"})
    danmaku_user_burst: int = field(default=5, metadata={"help": "danmaku a user may send in a burst"})
    danmaku_room_rate: float = field(default=200.0, metadata={"help": "danmaku per second a room accepts"})
    danmaku_batch_ms: int = field(
        default=100,
        metadata={"help": "longest a danmaku waits to share a frame with others under load (a quiet room sends "
                          "at once; 0: no batching, one frame per danmaku)"})
    danmaku_write_ms: int = field(
        default=250,
        metadata={"help": "danmaku rows are written in batches this often, after they are broadcast (a kill -9 "
                          "loses at most about this long of rows)"})
    websocket_compression: bool = field(
        default=False,
        metadata={"help": "offer permessage-deflate on Socket.IO WebSockets (off, as in Node's engine.io: "
                          "compressing each frame per viewer costs server and viewer CPU)",
                  "parse": _parse_bool})
    interaction_workers: int = field(
        default=1,
        metadata={"help": "processes serving Socket.IO WebSockets on this node ('cores': one per core); 1: the "
                          "control plane serves them itself; more: each new WebSocket is handed to the least "
                          "loaded worker process, rooms spread across them through Redis (REDIS_URL) or, "
                          "without it, the control plane's local bus; long-polling clients stay on the control "
                          "plane",
                  "parse": lambda s: (os.cpu_count() or 1) if s.strip().lower() == "cores" else int(s)})
    blocked_words: list[str] = field(
        default_factory=list,
        metadata={"help": "words refused in every room, comma separated",
                  "parse": lambda s: [w.strip().lower() for w in s.split(",") if w.strip()]},
    )

    def validate(self) -> None:
        if not 1 <= self.danmaku_max_chars <= 1000:
            raise ConfigError("danmaku_max_chars: 1 to 1000")
        if self.danmaku_user_rate <= 0 or self.danmaku_room_rate <= 0 or self.danmaku_user_burst < 1:
            raise ConfigError("danmaku rates: positive")
        if not 0 <= self.danmaku_batch_ms <= 2000:
            raise ConfigError("danmaku_batch_ms: 0 to 2000")
        if not 10 <= self.danmaku_write_ms <= 5000:
            raise ConfigError("danmaku_write_ms: 10 to 5000")
        if not 1 <= self.interaction_workers <= 64:
            raise ConfigError("interaction_workers: 1 to 64, or 'cores'")


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


@dataclass
class NotificationSettings:
    """Followers' notifications: the in-app inbox always, email when SMTP is set."""

    smtp_url: str = field(
        default="",
        metadata={"help": "SMTP server for notification email: smtp://[user:password@]host[:port] (STARTTLS "
                          "when offered), smtps://... (implicit TLS) or smtp+plain://... (no TLS, local relays "
                          "and tests); empty: no email, the in-app inbox only"},
    )
    mail_from: str = field(default="", metadata={"help": "From address of notification email (required with smtp_url)"})
    reminder_minutes: int = field(
        default=15, metadata={"help": "minutes before a room's start that followers get a reminder"}
    )
    reminder_check_seconds: float = field(
        default=30.0, metadata={"help": "seconds between looks for rooms whose reminder is due"}
    )

    def validate(self) -> None:
        if self.smtp_url and not self.smtp_url.startswith(("smtp://", "smtps://", "smtp+plain://")):
            raise ConfigError("smtp_url: smtp://, smtps:// or smtp+plain://host[:port]")
        if self.smtp_url and "@" not in self.mail_from:
            raise ConfigError("mail_from: an email address is required with smtp_url")
        if not 1 <= self.reminder_minutes <= 1440:
            raise ConfigError("reminder_minutes: 1 to 1440")
        if not 0.1 <= self.reminder_check_seconds <= 3600:
            raise ConfigError("reminder_check_seconds: 0.1 to 3600")


SECTIONS: dict[str, type] = {
    "server": ServerSettings,
    "media": MediaSettings,
    "recording": RecordingSettings,
    "paywall": PaywallSettings,
    "interaction": InteractionSettings,
    "ops": OpsSettings,
    "insight": InsightSettings,
    "notifications": NotificationSettings,
}


@dataclass
class Settings:
    """Every setting of the server, one section per area (see ``SECTIONS``)."""

    server: ServerSettings = field(default_factory=ServerSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    recording: RecordingSettings = field(default_factory=RecordingSettings)
    paywall: PaywallSettings = field(default_factory=PaywallSettings)
    interaction: InteractionSettings = field(default_factory=InteractionSettings)
    ops: OpsSettings = field(default_factory=OpsSettings)
    insight: InsightSettings = field(default_factory=InsightSettings)
    notifications: NotificationSettings = field(default_factory=NotificationSettings)

    # ------------------------------------------------------------------ building
    @staticmethod
    def settings_fields() -> Iterator[tuple[str, dataclasses.Field]]:
        """Every setting as (section, field), in the order of the sections."""
        for section, cls in SECTIONS.items():
            for f in dataclasses.fields(cls):
                yield section, f

    @classmethod
    def build(cls, **values: Any) -> "Settings":
        """Settings from flat names (``Settings.build(port=8081, recordings=False)``), each routed to
        its section; an unknown name is a TypeError, as for any constructor."""
        per_section: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
        owner = {f.name: section for section, f in cls.settings_fields()}
        for name, value in values.items():
            if name not in owner:
                raise TypeError(f"Settings has no setting {name!r}")
            per_section[owner[name]][name] = value
        return cls(**{section: SECTIONS[section](**kw) for section, kw in per_section.items()})

    @classmethod
    def load(
        cls, argv: list[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> "Settings":
        """Defaults, then ``STAGEPASS_*`` from the environment, then CLI flags."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for _, f in cls.settings_fields():
            raw = environ.get("STAGEPASS_" + f.name.upper())
            if raw is None and "alias" in f.metadata:
                raw = environ.get(f.metadata["alias"])
            if raw is not None:
                values[f.name] = cls._convert(f, raw)
        if argv:
            parser = argparse.ArgumentParser(prog="stagepass serve", add_help=True)
            cls.add_arguments(parser)
            args = parser.parse_args(argv)
            for _, f in cls.settings_fields():
                raw = getattr(args, f.name)
                if raw is not None:
                    values[f.name] = cls._convert(f, raw)
        settings = cls.build(**values)
        settings.validate()
        return settings

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        for section, f in cls.settings_fields():
            switch = f.metadata.get("parse") is _parse_bool  # --keep-local alone means on
            parser.add_argument(
                "--" + f.name.replace("_", "-"),
                dest=f.name,
                default=None,
                **({"nargs": "?", "const": "on"} if switch else {}),
                help=f"{f.metadata.get('help', '')} (env STAGEPASS_{f.name.upper()}; {section})".replace("%", "%%"),
            )

    @staticmethod
    def _convert(f: dataclasses.Field, raw: str) -> Any:
        parse = f.metadata.get("parse")
        try:
            if parse is not None:
                return parse(raw)
            if f.type in ("int", int):
                return int(raw)
            if f.type in ("float", float):
                return float(raw)
            if f.type in ("Path", Path):
                return Path(raw)
            return raw
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(f"{f.name}: {exc}") from None

    def validate(self) -> None:
        """Each section checks its own settings; the checks that span sections follow."""
        for section in SECTIONS:
            getattr(self, section).validate()
        try:
            from core.storage_url import parse_storage_url

            parse_storage_url(self.recording.storage_url, self.server.data_dir / "recordings")
        except ValueError as exc:
            raise ConfigError(f"storage_url: {exc}") from None
        if not self.paywall.payment_provider and self.server.public_url.startswith("https://"):
            raise ConfigError(
                "payment_provider: PUBLIC_URL is https (a real deployment) but no payment provider is set, "
                "so buyers could confirm their own test-mode payments; set STAGEPASS_PAYMENT_PROVIDER=stripe, "
                "or STAGEPASS_PAYMENT_PROVIDER=dev to run test mode on purpose")

    # ------------------------------------------------------------------ derived (from the data dir)
    def database(self) -> str:
        if self.server.database_url:
            return self.server.database_url
        data_dir = self.server.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(data_dir / 'stagepass.db').resolve()}"

    def signing_secret(self) -> str:
        """The configured secret, or one generated once into the data dir (mode 0600)."""
        if self.server.secret:
            return self.server.secret
        path = self.server.data_dir / "secret.key"
        if path.exists():
            return path.read_text().strip()
        self.server.data_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        path.write_text(value)
        path.chmod(0o600)
        return value

    def node_url(self) -> str:
        """Where other nodes reach this one: ``public_url``, or the listening address."""
        if self.server.public_url:
            return self.server.public_url
        host = "127.0.0.1" if self.server.host in ("0.0.0.0", "::", "") else self.server.host
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.server.port}"

    def node_id(self) -> str:
        """This node's id, generated once into ``DATA_DIR/node-id``: a node is a data dir
        (its recordings, keys and, by default, its database), so a restart is the same node."""
        path = self.server.data_dir / "node-id"
        if path.exists():
            return path.read_text().strip()
        self.server.data_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_hex(8)
        path.write_text(value)
        return value

    def stream_keys(self) -> dict[str, str]:
        """The configured rooms, or a generated ``demo`` room persisted in the data dir."""
        if self.media.rooms:
            return dict(self.media.rooms)
        path = self.server.data_dir / "stream-keys.json"
        if path.exists():
            return json.loads(path.read_text())
        self.server.data_dir.mkdir(parents=True, exist_ok=True)
        keys = {"demo": secrets.token_urlsafe(18)}
        path.write_text(json.dumps(keys, indent=2))
        path.chmod(0o600)
        return keys
