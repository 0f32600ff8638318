"""Logging that says what happened to whom: every line carries room and session ids."""

from __future__ import annotations

import logging

__all__ = ["context_logger", "setup_logging"]

_FORMAT = "%(asctime)s %(levelname)s %(name)s [room=%(room)s session=%(session)s] %(message)s"


class _ContextDefaults(logging.Filter):
    """Lines from libraries have no room or session: show '-' instead of failing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "room"):
            record.room = "-"
        if not hasattr(record, "session"):
            record.session = "-"
        return True


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(_ContextDefaults())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # chatty at INFO: every ICE check, every migration plugin, every socket
    for name in ("aioice", "aiortc", "alembic", "engineio", "socketio"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def context_logger(name: str, room: str = "-", session: str = "-") -> logging.LoggerAdapter:
    return logging.LoggerAdapter(logging.getLogger(name), {"room": room, "session": session})
