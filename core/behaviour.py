"""The behaviour-event seam: what the edges (pages, WHEP, chat, orders) report about viewers.

Callers hold a ``BehaviourSink`` and call ``record`` on their path; it never blocks and
never raises (the store behind it batches writes off the request path). The default
``NO_EVENTS`` drops everything, so the media domain, the paywall and the chat work
without the analytics package; the app's assembly hands them the real store
(``insight.store.EventStore``). A room is named either by its catalog id (``room_id``)
or by its slug (``room``); the store resolves slugs and drops rooms outside the catalog.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol

__all__ = ["BehaviourSink", "EVENT_KINDS", "NO_EVENTS", "NoEvents"]

#: every kind of event the store keeps (the table's check constraint lists the same)
EVENT_KINDS = (
    "page_visit",          # data.page: catalog | room | replay
    "preview_start", "preview_end",
    "checkout_started", "checkout_completed", "checkout_abandoned",  # value: amount (minor units)
    "live_join", "live_leave",  # t_ms: the broadcast's media clock
    "replay_progress",     # t_ms: position in the replay of ``broadcast``
    "danmaku", "like", "question", "tip",  # value: likes counted, tip amount
)


class BehaviourSink(Protocol):
    def record(self, kind: str, *, user_id: Optional[int] = None, visitor: Optional[str] = None,
               room_id: Optional[int] = None, room: Optional[str] = None, broadcast: Optional[str] = None,
               t_ms: Optional[int] = None, value: Optional[int] = None,
               data: Optional[dict[str, Any]] = None) -> None:
        """Queue one event (returns at once; never raises)."""


class NoEvents:
    """A sink that keeps nothing (tests of other packages, media-only servers)."""

    def record(self, kind: str, **fields: Any) -> None:
        return None


NO_EVENTS: BehaviourSink = NoEvents()
