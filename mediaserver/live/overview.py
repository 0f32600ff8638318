"""What every kind of room reports of itself: ``room_overview`` (the first fields of its
``stats()``) and ``LiveObserver`` (what happens as it happens, for the metrics)."""

from __future__ import annotations

from typing import Any

__all__ = ["LiveObserver", "room_overview"]


def room_overview(room: Any) -> dict:
    """The first fields of a room's ``stats()``, the same for a ``Room`` and for a room
    whose media are in worker processes (``mediaserver.workers.remote.WorkerRoom``)."""
    return {
        "room": room.name,
        "live": room.live,
        "phase": room.phase,
        "ended_broadcast": room.ended_broadcast.id if room.ended_broadcast else None,
        "broadcast": {"id": room.broadcast.id, "t_ms": room.broadcast.t_ms()} if room.broadcast else None,
        "viewers": room.viewer_count(),
        "relays": len(room.subscribers) - room.viewer_count(),
        "origin": room.origin,
        "codecs": dict(room.publisher.codecs) if room.publisher else {},
    }


class LiveObserver:
    """What the live domain reports as it happens; metrics subclass it. No-ops here."""

    def viewer_first_media(self, seconds: float) -> None:
        """A viewer got its first media packet ``seconds`` after its WHEP POST."""

    def peer_failed(self, role: str, stage: str, cause: str) -> None:
        """A publisher's or viewer's connection failed (``stage``: ice, dtls, consent, connect)."""
