"""``Accounts``: sign up, log in, log out; argon2 hashes (off the event loop, in
``PasswordPool``); rate-limited log-in failures and sign-ups per client.

A login is an opaque random token; only its SHA-256 is stored. Pages carry it in an
HttpOnly cookie, API clients as ``Authorization: Bearer``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Optional

from sqlalchemy import delete, select
from sqlalchemy.sql import Subquery
from sqlalchemy.exc import IntegrityError

from .db import Database
from core.access import Refusal
from .models import LoginSession, User
from .passwords import PasswordPool
from core.timeutil import as_utc, utcnow

__all__ = ["Accounts", "LoginRateLimiter", "UserView", "public_names"]

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")
SESSION_LIFETIME = dt.timedelta(days=14)


def public_names() -> Subquery:
    """Users' public fields (``user_id``, ``display_name``) for other packages to join their own
    rows against, without reading the users table itself (emails, password hashes)."""
    return select(User.id.label("user_id"), User.display_name).subquery("public_names")


@dataclass(frozen=True)
class UserView:
    id: int
    email: str
    display_name: str
    role: str

    def as_dict(self) -> dict:
        return {"id": self.id, "email": self.email, "display_name": self.display_name, "role": self.role}

    def require_admin(self, only_admins: str) -> None:
        """Raise 403 ``admin_only`` (``only admins <only_admins>``) unless this user is an admin:
        the one check every admin-only action goes through."""
        if self.role != "admin":
            raise Refusal(403, "admin_only", f"only admins {only_admins}")


def _view(user: User) -> UserView:
    return UserView(user.id, user.email, user.display_name, user.role)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class LoginRateLimiter:
    """At most ``attempts`` failed logins per key (email, and client address) per window."""

    def __init__(self, attempts: int = 5, window: float = 60.0) -> None:
        self.attempts = attempts
        self.window = window
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def retry_after(self, *keys: str) -> float:
        now = time.monotonic()
        worst = 0.0
        for key in keys:
            q = self._failures.get(key)
            while q and now - q[0] > self.window:
                q.popleft()
            if q and len(q) >= self.attempts:
                worst = max(worst, self.window - (now - q[0]))
        return worst

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        for key in keys:
            self._failures[key].append(now)

    def succeeded(self, email_key: str) -> None:
        self._failures.pop(email_key, None)


class Accounts:
    def __init__(self, db: Database, limiter: Optional[LoginRateLimiter] = None,
                 signups_per_hour: int = 10, passwords: Optional[PasswordPool] = None) -> None:
        self.db = db
        self.passwords = passwords or PasswordPool()
        self.limiter = limiter or LoginRateLimiter()
        #: every sign-up counts (each costs an argon2 hash); 0: no limit
        self.signups = LoginRateLimiter(attempts=signups_per_hour, window=3600.0) if signups_per_hour else None

    def close(self) -> None:
        self.passwords.close()

    async def sign_up(self, email: str, password: str, display_name: str, role: str,
                      client: Optional[str] = None) -> tuple[UserView, str]:
        """A new account and its login token; at most ``signups_per_hour`` per ``client``."""
        email = email.strip().lower()
        if not EMAIL_RE.match(email):
            raise Refusal(400, "invalid_email", "that is not an email address")
        if not 8 <= len(password) <= 256:
            raise Refusal(400, "weak_password", "the password needs 8 to 256 characters")
        display_name = display_name.strip()
        if not 1 <= len(display_name) <= 64:
            raise Refusal(400, "invalid_name", "the display name needs 1 to 64 characters")
        if role not in ("viewer", "creator"):
            raise Refusal(400, "invalid_role", "sign up as 'viewer' or 'creator'")
        if self.signups is not None and client is not None:
            key = f"client:{client}"
            wait = self.signups.retry_after(key)
            if wait > 0:
                raise Refusal(429, "too_many_signups", f"too many sign-ups from here; retry in {int(wait) + 1} s")
            self.signups.failed(key)  # counts the attempt
        user = User(email=email, display_name=display_name, role=role,
                    password_hash=await self.passwords.hash(password))
        async with self.db() as s:
            s.add(user)
            try:
                await s.commit()
            except IntegrityError:
                raise Refusal(409, "email_taken", "an account with this email exists") from None
        return _view(user), await self._new_session(user.id)

    async def log_in(self, email: str, password: str, client: str) -> tuple[UserView, str]:
        email = email.strip().lower()
        keys = (f"email:{email}", f"client:{client}")
        wait = self.limiter.retry_after(*keys)
        if wait > 0:
            raise Refusal(429, "too_many_attempts", f"too many failed logins; retry in {int(wait) + 1} s")
        async with self.db() as s:
            user = (await s.execute(select(User).where(User.email == email))).scalar_one_or_none()
        ok = False
        if user is not None:
            ok = await self.passwords.verify(user.password_hash, password)
        else:
            await self.passwords.hash(password)  # same cost whether or not the account exists
        if not ok:
            self.limiter.failed(*keys)
            raise Refusal(401, "bad_credentials", "wrong email or password")
        self.limiter.succeeded(keys[0])
        return _view(user), await self._new_session(user.id)

    async def _new_session(self, user_id: int) -> str:
        token = secrets.token_urlsafe(32)
        async with self.db() as s:
            s.add(LoginSession(token_hash=token_hash(token), user_id=user_id,
                               expires_at=utcnow() + SESSION_LIFETIME))
            await s.commit()
        return token

    async def user_for_token(self, token: str) -> Optional[UserView]:
        async with self.db() as s:
            row = (await s.execute(
                select(User, LoginSession.expires_at)
                .join(LoginSession, LoginSession.user_id == User.id)
                .where(LoginSession.token_hash == token_hash(token))
            )).first()
        if row is None or as_utc(row[1]) < utcnow():
            return None
        return _view(row[0])

    async def log_out(self, token: str) -> None:
        async with self.db() as s:
            await s.execute(delete(LoginSession).where(LoginSession.token_hash == token_hash(token)))
            await s.commit()

    async def get(self, user_id: int) -> Optional[UserView]:
        async with self.db() as s:
            user = await s.get(User, user_id)
        return _view(user) if user else None

    async def by_email(self, email: str) -> Optional[UserView]:
        async with self.db() as s:
            user = (await s.execute(select(User).where(User.email == email.strip().lower()))).scalar_one_or_none()
        return _view(user) if user else None

    async def set_role(self, email: str, role: str) -> UserView:
        if role not in ("viewer", "creator", "admin"):
            raise Refusal(400, "invalid_role", f"unknown role {role!r}")
        async with self.db() as s:
            user = (await s.execute(select(User).where(User.email == email.lower()))).scalar_one_or_none()
            if user is None:
                raise Refusal(404, "user_not_found", f"no account {email!r}")
            user.role = role
            await s.commit()
            return _view(user)
