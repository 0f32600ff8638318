"""The per-viewer watermark of paid content: what the players overlay, and for whom.

A paid room (a ticket or replay price) shows every viewer a moving overlay with their masked
id and the time, unless its creator turned ``rooms.watermark`` off. A leaked screen
recording then names the account it came from; the mask keeps the email unreadable to
whoever watches the leak. The drawing is the pages' (``web/static/watermark.js``).
"""

from __future__ import annotations

from typing import Optional

from .accounts import UserView
from .catalog import RoomView

__all__ = ["masked_id", "watermark_for"]


def _mask(part: str, keep: int) -> str:
    return part[:keep] + "***" if len(part) > keep else part[:1] + "***"


def masked_id(user: UserView) -> str:
    """``#42 al***@ex***.com``: the account number and a masked email."""
    local, _, domain = user.email.partition("@")
    host, dot, tld = domain.rpartition(".")
    masked_domain = f"{_mask(host, 2)}{dot}{tld}" if host else _mask(domain, 2)
    return f"#{user.id} {_mask(local, 2)}@{masked_domain}"


def watermark_for(user: Optional[UserView], room: Optional[RoomView]) -> Optional[dict]:
    """``{"label"}`` for ``user`` watching ``room`` when the room is paid and its watermark on;
    None otherwise (free rooms, the creator's own room, visitors without an account)."""
    if user is None or room is None or not room.watermark or user.id == room.creator_id:
        return None
    if room.ticket_price <= 0 and not room.replay_price:
        return None
    return {"label": masked_id(user)}
