"""Who may act through the console: the admin login, its signed session cookie and CSRF tokens.

Without an admin token the console is read-only and nobody logs in. With one, the login form
takes the configured ``admin_user`` and the token; both are compared in constant time.

Sessions are signed cookies: ``base64(json) "." base64(HMAC-SHA256)``, holding the login, an
expiry and a random nonce, nothing secret. The signing key is derived from the admin token
(HMAC of a fixed label under the token) rather than drawn at random per process, so a session
survives a console restart and is valid on every console process sharing the token, and
rotating the token ends every session at once. The key itself never leaves this module.

Logging out ends the session: its nonce is remembered as revoked until the session would have
expired anyway, in this process's memory (a restart, or another console process, does not
know it; rotating the token ends every session everywhere). At most ``MAX_REVOKED`` are kept:
past that, every session issued so far is ended at once rather than one forgotten.

CSRF: each form carries an HMAC of the session's nonce (a different purpose label than the
signature), so a token only works with the session it was issued to. The login form has no
session yet: it pairs with a random pre-login cookie the same way (double submit, signed).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import SecretStr

SESSION_COOKIE = "invoice_sync_session"
LOGIN_COOKIE = "invoice_sync_login"
_KEY_LABEL = b"invoice-sync console session key v1"
# Revoked sessions remembered at once; each is a logout of a session the admin logged in to.
MAX_REVOKED = 10_000


@dataclass(frozen=True, kw_only=True, slots=True)
class Session:
    user: str
    issued: float
    expires: float
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AdminAuth:
    """The admin credential and the sessions signed with a key derived from it."""

    def __init__(
        self,
        *,
        user: str,
        token: SecretStr,
        ttl: float,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.user = user
        self._token = token.get_secret_value().encode("utf-8")
        self._key = hmac.new(self._token, _KEY_LABEL, hashlib.sha256).digest()
        self.ttl = ttl
        self._now = now
        # Logged-out sessions' nonces and when they would have expired; sessions issued up to
        # _revoked_before are all ended (the table overflowed).
        self._revoked: dict[str, float] = {}
        self._revoked_before = 0.0

    def _mac(self, purpose: str, text: str) -> str:
        message = f"{purpose}:{text}".encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())

    def check_login(self, user: str, token: str) -> bool:
        """Both compared in constant time, and both always compared (no early exit on the
        user, which would tell a guesser the name is right)."""
        user_ok = hmac.compare_digest(user.encode("utf-8"), self.user.encode("utf-8"))
        token_ok = hmac.compare_digest(token.encode("utf-8"), self._token)
        return user_ok and token_ok

    def issue(self) -> str:
        """A new session cookie's value for the admin."""
        now = self._now()
        body = {"u": self.user, "iat": now, "exp": now + self.ttl, "n": secrets.token_urlsafe(16)}
        payload = _b64(json.dumps(body, separators=(",", ":")).encode("utf-8"))
        return f"{payload}.{self._mac('session', payload)}"

    def read(self, cookie: str | None) -> Session | None:
        """The session the cookie holds, or None: unsigned, tampered, expired, logged out or
        malformed."""
        if not cookie or cookie.count(".") != 1:
            return None
        payload, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._mac("session", payload)):
            return None
        try:
            body = json.loads(_unb64(payload))
            session = Session(
                user=str(body["u"]),
                issued=float(body["iat"]),
                expires=float(body["exp"]),
                nonce=str(body["n"]),
            )
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires <= self._now() or session.user != self.user:
            return None
        if session.nonce in self._revoked or session.issued <= self._revoked_before:
            return None
        return session

    def revoke(self, session: Session) -> None:
        """End ``session`` (a logout): its cookie reads as None from now on, in this process."""
        now = self._now()
        self._revoked = {n: exp for n, exp in self._revoked.items() if exp > now}
        if len(self._revoked) >= MAX_REVOKED:
            self._revoked_before = now
            self._revoked.clear()
        else:
            self._revoked[session.nonce] = session.expires

    def csrf_token(self, session: Session) -> str:
        return self._mac("csrf", session.nonce)

    def csrf_ok(self, session: Session, token: str) -> bool:
        return hmac.compare_digest(token.encode("utf-8"), self.csrf_token(session).encode())

    def login_csrf_token(self, login_cookie: str) -> str:
        return self._mac("login", login_cookie)

    def login_csrf_ok(self, login_cookie: str | None, token: str) -> bool:
        if not login_cookie:
            return False
        expected = self.login_csrf_token(login_cookie).encode()
        return hmac.compare_digest(token.encode("utf-8"), expected)


def new_login_cookie() -> str:
    return secrets.token_urlsafe(16)
