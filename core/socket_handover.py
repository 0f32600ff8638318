"""Handing an accepted TCP connection to another process of this machine.

The sender passes the connection's file descriptor (``SCM_RIGHTS``) with a message over a
Unix ``SOCK_SEQPACKET`` socket (one message, one descriptor, never split or merged), then
lets go of its own copy. The receiver wraps the descriptor into a socket and serves the
connection from then on: no proxy hop, no second copy of the bytes. Used for Socket.IO
WebSockets (interaction workers) and RTMP encoders (media workers).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Optional

__all__ = ["hand_over", "receive_handed"]


def hand_over(channel: socket.socket, data: bytes, transport: asyncio.BaseTransport) -> None:
    """Send ``transport``'s connection with ``data`` over ``channel``, then drop this
    process's copy without a FIN (``abort`` closes only our descriptor: the receiver's
    keeps the connection open). ``OSError`` (``BlockingIOError`` when the channel is full)
    if the connection could not be sent: it is still ours then."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        raise OSError("the connection has no socket (already closed)")
    socket.send_fds(channel, [data], [sock.fileno()])
    transport.abort()  # type: ignore[attr-defined]


def receive_handed(channel: socket.socket, max_bytes: int) -> Optional[tuple[bytes, Optional[socket.socket]]]:
    """One message from ``channel``: its data and the socket handed with it (None for a
    message without one), or None when the sender closed its end (or the channel failed).
    ``BlockingIOError`` when nothing waits on a non-blocking channel."""
    try:
        data, fds, _flags, _address = socket.recv_fds(channel, max_bytes, 1)
    except BlockingIOError:
        raise
    except OSError:
        return None
    if not data and not fds:
        return None
    return data, socket.socket(fileno=fds[0]) if fds else None
