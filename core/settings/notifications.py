"""The ``notifications`` section: followers' in-app inbox, email and reminders."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.settings.parsing import ConfigError

__all__ = ["NotificationSettings"]


@dataclass
class NotificationSettings:
    """Followers' notifications: the in-app inbox always, email when SMTP is set."""

    smtp_url: str = field(
        default="",
        metadata={"help": "SMTP server for notification email: smtp://[user:password@]host[:port] (STARTTLS "
                          "when offered), smtps://... (implicit TLS) or smtp+plain://... (no TLS, local relays "
                          "and tests); empty: no email, the in-app inbox only"},
    )
    mail_from: str = field(default="", metadata={"help": "From address of notification email (required with smtp_url)"})
    reminder_minutes: int = field(
        default=15, metadata={"help": "minutes before a room's start that followers get a reminder"}
    )
    reminder_check_seconds: float = field(
        default=30.0, metadata={"help": "seconds between looks for rooms whose reminder is due"}
    )

    def validate(self) -> None:
        if self.smtp_url and not self.smtp_url.startswith(("smtp://", "smtps://", "smtp+plain://")):
            raise ConfigError("smtp_url: smtp://, smtps:// or smtp+plain://host[:port]")
        if self.smtp_url and "@" not in self.mail_from:
            raise ConfigError("mail_from: an email address is required with smtp_url")
        if not 1 <= self.reminder_minutes <= 1440:
            raise ConfigError("reminder_minutes: 1 to 1440")
        if not 0.1 <= self.reminder_check_seconds <= 3600:
            raise ConfigError("reminder_check_seconds: 0.1 to 3600")
