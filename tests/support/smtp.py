"""A real SMTP server for tests (aiosmtpd) that keeps every message it accepts."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import socket
import time
from email.message import EmailMessage
from typing import Iterator

from aiosmtpd.controller import Controller

__all__ = ["Inbox", "free_port", "smtp_server"]


class Inbox:
    """aiosmtpd's handler: the messages received, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(message)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            assert time.monotonic() < deadline, [m["Subject"] for m in self.messages]
            await asyncio.sleep(0.05)
        return self.messages


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[str, Inbox]]:
    """(``smtp+plain://127.0.0.1:port`` URL, its inbox) while the server runs."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp+plain://127.0.0.1:{port}", inbox
    finally:
        controller.stop()
