"""``Mailer``: email out through an SMTP server (aiosmtplib), configured by one URL.

``smtp://user:password@host:587`` uses STARTTLS when the server offers it, ``smtps://`` is
implicit TLS (port 465), ``smtp+plain://`` never encrypts (a local relay, tests). The
password never reaches a log line.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from typing import Optional
from urllib.parse import unquote, urlsplit

import aiosmtplib

__all__ = ["Mailer", "MailError"]

log = logging.getLogger("stagepass.mail")


class MailError(Exception):
    """The SMTP server refused a message or could not be reached."""


class Mailer:
    def __init__(self, url: str, sender: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps", "smtp+plain") or not parts.hostname:
            raise ValueError("smtp url: smtp://, smtps:// or smtp+plain://host[:port]")
        self.sender = sender
        self.host = parts.hostname
        self.implicit_tls = parts.scheme == "smtps"
        self.port = parts.port or (465 if self.implicit_tls else 587 if parts.scheme == "smtp" else 25)
        self.username: Optional[str] = unquote(parts.username) if parts.username else None
        self._password: Optional[str] = unquote(parts.password) if parts.password else None
        self.start_tls: Optional[bool] = False if parts.scheme == "smtp+plain" else None  # None: when offered
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Mailer({self.host}:{self.port}, from {self.sender})"

    async def send(self, to: str, subject: str, text: str, headers: Optional[dict[str, str]] = None) -> None:
        """Send one plain-text message; ``MailError`` when the server refuses it."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        for name, value in (headers or {}).items():
            message[name] = value
        message.set_content(text)
        try:
            await aiosmtplib.send(
                message, hostname=self.host, port=self.port, username=self.username, password=self._password,
                use_tls=self.implicit_tls, start_tls=False if self.implicit_tls else self.start_tls,
                timeout=self.timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise MailError(f"{self.host}:{self.port}: {exc}") from exc
