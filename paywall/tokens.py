"""``TokenIssuer``: short-lived signed access tokens (JWT, HS256 pinned).

Scopes: ``publish:<room>``, ``view:<room>``, ``replay:<recording>``. Claims: ``sub``
(user id), ``scope``, ``iat``, ``exp``, ``jti``; a free-preview token also carries
``preview_until`` (unix seconds). Verification refuses any other algorithm (``none``
included), a wrong key, a missing claim, another scope and an expired token.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Iterable, Optional

import jwt

from core.access import Refusal

__all__ = ["TokenIssuer"]

ALGORITHM = "HS256"


class TokenIssuer:
    def __init__(self, secret: str, ttl: int = 300, issuer: str = "stagepass") -> None:
        if len(secret) < 32:
            raise ValueError("the token secret needs at least 32 characters")
        self._secret = secret
        self.ttl = ttl
        self.issuer = issuer

    def mint(self, user_id: int, scope: str, ttl: Optional[int] = None, **extra: Any) -> tuple[str, dict]:
        now = int(time.time())
        claims = {
            "iss": self.issuer, "sub": str(user_id), "scope": scope, "iat": now,
            "exp": now + (ttl or self.ttl), "jti": secrets.token_hex(16), **extra,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM), claims

    @staticmethod
    def scope_of(token: str) -> str:
        """The ``scope`` a token claims, NOT verified (to pick which check applies);
        "" for anything that is not a JWT. Always ``verify`` before trusting it."""
        try:
            return str(jwt.decode(token, options={"verify_signature": False}).get("scope", ""))
        except jwt.InvalidTokenError:
            return ""

    def verify(self, token: str, scopes: Iterable[str]) -> dict:
        """Claims of a valid token for exactly one of ``scopes``; ``Refusal`` 401/403 otherwise."""
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM], issuer=self.issuer,
                options={"require": ["exp", "iat", "jti", "sub", "scope", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise Refusal(401, "token_expired", "the access token has expired; get a new one") from None
        except jwt.InvalidTokenError:
            raise Refusal(401, "invalid_token", "the access token is not valid") from None
        scopes = tuple(scopes)
        if claims["scope"] not in scopes:
            raise Refusal(403, "wrong_scope", f"this token does not grant {' or '.join(scopes)}")
        return claims
