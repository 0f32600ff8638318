"""Logging that says what happened to whom: every line carries room and session ids.

Two formats (``--log-format``): ``text``, one readable line, and ``json``, one object a
line with ``room``, ``session`` and ``user`` as fields for a log pipeline. Neither ever
holds a token: the context fields are ids, and messages never name a credential.
"""

from __future__ import annotations

import json
import logging
import time

__all__ = ["JsonFormatter", "context_logger", "setup_logging"]

_FORMAT = "%(asctime)s %(levelname)s %(name)s [room=%(room)s session=%(session)s] %(message)s"


class _ContextDefaults(logging.Filter):
    """Lines from libraries have no room or session: show '-' instead of failing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "room"):
            record.room = "-"
        if not hasattr(record, "session"):
            record.session = "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and the context ids
    (``room``, ``session``, ``user``) when the line has them."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("worker", "room", "session", "user"):
            value = getattr(record, key, None)
            if value not in (None, "-"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _WorkerTag(logging.Filter):
    """Every line of a media worker process says which worker wrote it."""

    def __init__(self, worker: int) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.worker
        return True


def setup_logging(level: str = "INFO", log_format: str = "text", worker: int | None = None) -> None:
    """Log to stderr; ``worker``: in media worker ``worker``'s process (a ``worker=`` field)."""
    handler = logging.StreamHandler()
    text = _FORMAT if worker is None else _FORMAT.replace("[room=", "[worker=%(worker)s room=")
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(text))
    handler.addFilter(_ContextDefaults())
    if worker is not None:
        handler.addFilter(_WorkerTag(worker))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # chatty at INFO: every ICE check, every migration plugin, every socket
    for name in ("aioice", "aiortc", "alembic", "engineio", "socketio"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def context_logger(name: str, room: str = "-", session: str = "-") -> logging.LoggerAdapter:
    return logging.LoggerAdapter(logging.getLogger(name), {"room": room, "session": session})
