"""One typed configuration for the whole server, nested per area.

``Settings`` holds one section per area (``server``, ``media``, ``recording``, ``paywall``,
``interaction``, ``ops``, ``insight``, ``notifications``); each package reads its own section.
Every setting has its default in its section's module and nowhere else, an environment variable
``STAGEPASS_<NAME>`` and a CLI flag ``--<name>`` (names are unique across sections, so the
variables did not change when the settings were nested); the CLI flag wins over the environment.
``Settings.validate`` runs at start and refuses nonsense with a message naming the setting.

The package: ``parsing`` (field metadata, value parsers, environment and CLI, the usable
CPUs), ``memory`` (the usable memory, for the interaction workers' default), one module per
section (``server``, ``media``, ``recording``, ``paywall``, ``interaction``, ``ops`` with
``insight``, ``notifications``), and ``composite`` (``Settings`` and the checks across sections).
Import from here: ``from core.settings import Settings``.
"""

from core.settings.composite import SECTIONS, Settings
from core.settings.interaction import InteractionSettings
from core.settings.media import ROOM_NAME_RE, MediaSettings
from core.settings.notifications import NotificationSettings
from core.settings.ops import InsightSettings, OpsSettings
from core.settings.parsing import ConfigError
from core.settings.paywall import PaywallSettings
from core.settings.recording import RecordingSettings
from core.settings.server import ServerSettings

__all__ = ["ConfigError", "Settings", "SECTIONS", "ServerSettings", "MediaSettings", "RecordingSettings",
           "PaywallSettings", "InteractionSettings", "OpsSettings", "InsightSettings", "NotificationSettings",
           "ROOM_NAME_RE"]
