"""One typed configuration for the whole server.

Every setting has a default, an environment variable ``STAGEPASS_<NAME>`` and a CLI
flag ``--<name>``; the CLI flag wins over the environment. ``Settings.validate``
runs at start and refuses nonsense with a message naming the setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

__all__ = ["ConfigError", "Settings", "ROOM_NAME_RE"]

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


@dataclass
class Settings:
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=8080, metadata={"help": "HTTP port"})
    data_dir: Path = field(
        default=Path("data"), metadata={"help": "where recordings, keys and the database live"}
    )
    log_level: str = field(default="INFO", metadata={"help": "DEBUG, INFO, WARNING or ERROR"})
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
    max_sdp_bytes: int = field(default=65536, metadata={"help": "largest accepted SDP body"})
    keyframe_min_interval: float = field(
        default=1.0,
        metadata={"help": "seconds between keyframe requests (PLI) sent to a publisher"},
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
    cors_origin: str = field(
        default="*", metadata={"help": "Access-Control-Allow-Origin for WHIP/WHEP"}
    )

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls, argv: list[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> "Settings":
        """Defaults, then ``STAGEPASS_*`` from the environment, then CLI flags."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get("STAGEPASS_" + f.name.upper())
            if raw is not None:
                values[f.name] = cls._convert(f, raw)
        if argv:
            parser = argparse.ArgumentParser(prog="stagepass serve", add_help=True)
            cls.add_arguments(parser)
            args = parser.parse_args(argv)
            for f in dataclasses.fields(cls):
                raw = getattr(args, f.name)
                if raw is not None:
                    values[f.name] = cls._convert(f, raw)
        settings = cls(**values)
        settings.validate()
        return settings

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        for f in dataclasses.fields(cls):
            parser.add_argument(
                "--" + f.name.replace("_", "-"),
                dest=f.name,
                default=None,
                help=f"{f.metadata.get('help', '')} (env STAGEPASS_{f.name.upper()})",
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
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port: {self.port} is not a TCP port")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"log_level: unknown level {self.log_level!r}")
        self.log_level = self.log_level.upper()
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
        if not 1024 <= self.max_sdp_bytes <= 1 << 20:
            raise ConfigError("max_sdp_bytes: must be between 1024 and 1048576")
        for name in ("keyframe_min_interval", "publisher_stale_seconds", "connect_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be positive")
        if self.subscriber_buffer_bytes < 16384:
            raise ConfigError("subscriber_buffer_bytes: must be at least 16384")

    # ------------------------------------------------------------------ derived
    def stream_keys(self) -> dict[str, str]:
        """The configured rooms, or a generated ``demo`` room persisted in the data dir."""
        if self.rooms:
            return dict(self.rooms)
        path = self.data_dir / "stream-keys.json"
        if path.exists():
            return json.loads(path.read_text())
        self.data_dir.mkdir(parents=True, exist_ok=True)
        keys = {"demo": secrets.token_urlsafe(18)}
        path.write_text(json.dumps(keys, indent=2))
        path.chmod(0o600)
        return keys
