"""JWT-looking access tokens for the Refrens sandbox's app-secret login.

Tokens are ``header.payload.signature`` in base64url, signed with HMAC-SHA256 under a key made
per sandbox, and carry ``iat``/``exp`` like Feathers' tokens. Expiry is also kept server-side
on the monotonic clock, so a lifetime under a second works for tests. Refusals are 401
NotAuthenticated with jsonwebtoken's messages (``jwt malformed``, ``invalid signature``,
``jwt expired``), and "Invalid login" once the app that logged in has been removed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker.testing.sandbox.refrens.errors import not_authenticated

AUDIENCE = "https://api.refrens.com"


@dataclass(frozen=True, kw_only=True, slots=True)
class Issued:
    app_id: str
    expires_at: float
    """On ``time.monotonic()``."""
    exp: int
    """Seconds since the epoch, as in the token."""


class TokenIssuer:
    """Issues and verifies the sandbox's access tokens."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._issued: dict[str, Issued] = {}
        self.logins = 0

    def issue(self, app_id: str, *, lifetime: float) -> dict[str, Any]:
        """The body Feathers answers a successful login with."""
        now = time.time()
        jti = secrets.token_hex(8)
        exp = int(now + lifetime)
        payload: dict[str, Any] = {
            "iat": int(now),
            "exp": exp,
            "aud": AUDIENCE,
            "iss": "refrens",
            "sub": app_id,
            "jti": jti,
        }
        token = self._sign(payload)
        self._issued[jti] = Issued(app_id=app_id, expires_at=time.monotonic() + lifetime, exp=exp)
        self.logins += 1
        return {
            "accessToken": token,
            "authentication": {"strategy": "app-secret", "accessToken": token, "payload": payload},
            "app": {"appId": app_id},
        }

    def verify(self, token: str, *, apps: Mapping[str, str]) -> None:
        """Accept a token this sandbox issued and that is still valid; 401 otherwise."""
        parts = token.split(".")
        if len(parts) != 3 or not all(parts):
            raise not_authenticated("jwt malformed")
        header_and_payload = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(parts[2], self._signature(header_and_payload)):
            raise not_authenticated("invalid signature")
        payload = json.loads(_unb64(parts[1]))
        issued = self._issued.get(payload.get("jti", ""))
        if issued is None:
            raise not_authenticated("invalid signature")
        if time.monotonic() >= issued.expires_at:
            expired_at = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(issued.exp))
            raise not_authenticated("jwt expired", name="TokenExpiredError", expiredAt=expired_at)
        if issued.app_id not in apps:
            raise not_authenticated("Invalid login")

    def expire_all(self) -> None:
        """Make every token issued so far expired, as if their lifetime had passed (tests)."""
        self._issued = {
            jti: Issued(app_id=i.app_id, expires_at=time.monotonic(), exp=i.exp)
            for jti, i in self._issued.items()
        }

    def _sign(self, payload: dict[str, Any]) -> str:
        header = _b64(json.dumps({"alg": "HS256", "typ": "access"}, separators=(",", ":")))
        body = _b64(json.dumps(payload, separators=(",", ":")))
        unsigned = f"{header}.{body}"
        return f"{unsigned}.{self._signature(unsigned)}"

    def _signature(self, unsigned: str) -> str:
        digest = hmac.new(self._key, unsigned.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
