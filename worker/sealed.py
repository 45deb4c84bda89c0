"""Account secrets sealed for the database: AES-GCM under a 256-bit key, the account's name
as associated data.

A sealed secret is ``nonce (12 random bytes) || ciphertext+tag``; beside it the table keeps the
key id (``key_id``: the first 16 hex digits of the key's SHA-256, which names the key without
revealing it). The name as associated data means a ciphertext copied onto another account's
row does not open. A ``Keyring`` holds the current key (used to seal) and any previous keys
(still accepted to open while ``accounts rotate-key`` re-seals the rows), so replicas keep
reading during a rotation.

Errors are ``SealError`` (a ``ConfigError``: a missing or wrong key is the operator's to fix);
their messages name the account and the key id, never a key or a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from worker.errors import ConfigError

KEY_BYTES = 32
NONCE_BYTES = 12


class SealError(ConfigError):
    """A secret cannot be sealed or opened: no key, a wrong key, or a damaged ciphertext."""


def new_key() -> str:
    """A fresh key: 32 random bytes, base64 (what ``accounts new-key`` prints)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def decode_key(text: str, source: str) -> bytes:
    """The key written as ``text`` (base64 of 32 bytes); ``SealError`` naming ``source``."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SealError(f"{source}: not base64 (expected 32 random bytes, base64)") from exc
    if len(key) != KEY_BYTES:
        raise SealError(f"{source}: {len(key)} bytes, expected {KEY_BYTES} (base64)")
    return key


def key_id(key: bytes) -> str:
    """A short, stable name for ``key``: a hash, never the key."""
    return hashlib.sha256(key).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Sealed:
    """One sealed secret as stored: the ciphertext and the id of the key that sealed it."""

    ciphertext: bytes
    key_id: str


class Keyring:
    """The current key (seals) and previous keys (still open) of a deployment."""

    def __init__(self, current: bytes | None, previous: Sequence[bytes] = ()) -> None:
        self._current = current
        self._keys = {key_id(k): k for k in previous}
        if current is not None:
            self._keys[key_id(current)] = current

    def __repr__(self) -> str:  # never the keys
        return f"Keyring(current={self.current_id!r}, known={sorted(self._keys)!r})"

    @property
    def current_id(self) -> str | None:
        return None if self._current is None else key_id(self._current)

    def seal(self, account: str, secrets: Mapping[str, str]) -> Sealed:
        """``secrets`` (e.g. ``{"token": ...}``) sealed for ``account`` under the current key."""
        if self._current is None:
            raise SealError(
                "secret_key: not set (secret_key_file or INVOICE_SYNC_SECRET_KEY); "
                "`invoice-sync accounts new-key` prints one"
            )
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps(dict(secrets), separators=(",", ":")).encode()
        sealed = nonce + AESGCM(self._current).encrypt(nonce, plain, account.encode())
        return Sealed(ciphertext=sealed, key_id=key_id(self._current))

    def open(self, account: str, sealed: Sealed) -> dict[str, str]:
        """The secrets sealed for ``account``; ``SealError`` naming the account if no key we
        hold opens them (no key, a key since dropped, a damaged or moved ciphertext)."""
        key = self._keys.get(sealed.key_id)
        if key is None:
            held = "no secret_key is set" if not self._keys else "no key held has that id"
            raise SealError(
                f"account {account}: cannot decrypt its secret (key id {sealed.key_id}; {held})"
            )
        nonce, body = sealed.ciphertext[:NONCE_BYTES], sealed.ciphertext[NONCE_BYTES:]
        try:
            plain = AESGCM(key).decrypt(nonce, body, account.encode())
        except (InvalidTag, ValueError) as exc:
            raise SealError(
                f"account {account}: cannot decrypt its secret (key id {sealed.key_id}: "
                "the ciphertext was altered or belongs to another account)"
            ) from exc
        return _secrets_from(account, plain)


def _secrets_from(account: str, plain: bytes) -> dict[str, str]:
    value = json.loads(plain)
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise SealError(f"account {account}: its secret is not an object of strings")
    return value
