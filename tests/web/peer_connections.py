"""Counting a page's RTCPeerConnections in Chromium, to check that nothing is left open."""

from __future__ import annotations

__all__ = ["OPEN", "count_peer_connections", "open_peer_connections"]

#: Every RTCPeerConnection the page makes, in ``window.peerConnections``.
_COUNT = """
(() => {
  const Native = window.RTCPeerConnection;
  const made = [];
  window.peerConnections = made;
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); made.push(this); }
  };
})();
"""
#: A JavaScript expression: how many of them are not closed.
OPEN = "window.peerConnections.filter((pc) => pc.signalingState !== 'closed').length"


async def count_peer_connections(page) -> None:
    """From the next page loaded on: keep every RTCPeerConnection it makes (before its scripts run)."""
    await page.add_init_script(_COUNT)


async def open_peer_connections(page) -> int:
    """How many of the page's RTCPeerConnections are not closed."""
    return await page.evaluate(OPEN)
