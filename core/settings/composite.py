"""The whole configuration: ``Settings``, one section per area, and the checks across sections.

``Settings.build(**flat)`` routes flat names to their sections (names are unique across
sections), ``Settings.load`` reads defaults, then ``STAGEPASS_*`` from the environment, then CLI
flags (see ``core.settings.parsing``), and ``Settings.validate`` runs each section's checks and then
those that span sections.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from core.settings import parsing
from core.settings.interaction import InteractionSettings
from core.settings.media import MediaSettings
from core.settings.notifications import NotificationSettings
from core.settings.ops import InsightSettings, OpsSettings
from core.settings.parsing import ConfigError
from core.settings.paywall import PaywallSettings
from core.settings.recording import RecordingSettings
from core.settings.server import ServerSettings

__all__ = ["Settings", "SECTIONS"]


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
        values = parsing.values_from_environment((f for _, f in cls.settings_fields()), environ)
        if argv:
            parser = argparse.ArgumentParser(prog="stagepass serve", add_help=True)
            cls.add_arguments(parser)
            args = parser.parse_args(argv)
            values.update(parsing.values_from_arguments(args, (f for _, f in cls.settings_fields())))
        settings = cls.build(**values)
        settings.validate()
        return settings

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One ``--<name>`` flag per setting (``stagepass serve``)."""
        parsing.add_arguments(parser, cls.settings_fields())

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
