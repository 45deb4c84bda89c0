"""``[console]``: where ``invoice-sync console`` listens and who may act through it.

Without ``admin_token_file`` the console is read-only: it shows every page and refuses every
action. The token is read from its file at start-up and held as a ``SecretStr``; it is never
written to a page, a log line or an error message.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
)

from worker.config.listen import listen_address
from worker.durations import duration_within, parse_duration
from worker.errors import ConfigError

# A token an attacker could guess by trying is no credential: 16 characters at least
# (`openssl rand -hex 16` gives 32).
MIN_TOKEN_LENGTH = 16
# A console on the loopback answers only to these names: a web page whose own name an attacker
# re-points at 127.0.0.1 (DNS rebinding) sends its name as the Host, and is refused.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 (recognised, not bound)
# A stolen session cookie works until it expires (or its login logs out): a week at most.
MAX_SESSION_TTL = 7 * 86400.0


def host_name(host: str) -> str:
    """A ``Host`` header's or an address's name: lowercase, without port, brackets or the
    trailing dot of a fully qualified name."""
    value = host.strip().lower()
    if value.startswith("["):  # [::1] or [::1]:9465
        value = value[1 : value.find("]")] if "]" in value else value[1:]
    elif value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


def _session_ttl_within(seconds: float) -> float:
    """A login lasts a minute at least (less cannot be used) and ``MAX_SESSION_TTL`` at most."""
    return duration_within(seconds, 60.0, MAX_SESSION_TTL)


def is_loopback(host: str) -> bool:
    """Whether a listen address is on loopback only (``localhost``, 127.0.0.0/8, ``::1``)."""
    name = host_name(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class ConsoleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    listen: str = "127.0.0.1:9465"
    """HOST:PORT the console serves on (port 0: any free one)."""
    admin_token_file: Path | None = None
    """A file holding the admin token; without it the console is read-only."""
    admin_user: str = Field(default="admin", min_length=1, max_length=64, pattern=r"^[\w.@-]+$")
    """The login name the form asks for, recorded as the actor of every console action."""
    session_ttl: Annotated[
        float, BeforeValidator(parse_duration), AfterValidator(_session_ttl_within)
    ] = 8 * 3600.0
    """How long a login lasts (at most ``MAX_SESSION_TTL``, a week)."""
    secure_cookies: bool | None = None
    """Mark the session and login cookies ``Secure`` (sent over https only). Unset: on when
    ``listen`` is not a loopback address (a network reaches it, through a TLS proxy), and on a
    loopback address for each request that came over https (a local TLS proxy saying
    ``X-Forwarded-Proto: https``), so plain ``http://127.0.0.1`` still logs in."""
    allowed_hosts: list[Annotated[str, Field(min_length=1, max_length=253)]] | None = None
    """Host names the console answers to (the ``Host`` header, port aside); others get 421.
    Unset: the loopback names when it listens on a loopback address, that address and the
    loopback names on another one, any name on a wildcard address (``0.0.0.0``, ``::``),
    where a proxy in front decides. ``["*"]``: any name."""

    @field_validator("listen")
    @classmethod
    def _listen_is_an_address(cls, value: str) -> str:
        if listen_address(value) is None:
            raise ValueError("the console needs an address (HOST:PORT), not off")
        return value

    @field_validator("admin_token_file")
    @classmethod
    def _readable_token(cls, value: Path | None) -> Path | None:
        if value is not None:
            read_admin_token(value)
        return value

    def listen_on(self) -> tuple[str, int]:
        address = listen_address(self.listen)
        assert address is not None  # checked by the validator
        return address

    def hosts(self) -> frozenset[str] | None:
        """The ``Host`` names to answer to (lowercase, no port); None: any."""
        if self.allowed_hosts is not None:
            names = {host_name(h) for h in self.allowed_hosts}
            return None if "*" in names else frozenset(n for n in names if n)
        host, _port = self.listen_on()
        name = host_name(host)
        if name in WILDCARD_HOSTS:
            return None
        return LOOPBACK_NAMES | {name}

    def cookies_secure(self) -> bool | None:
        """``secure_cookies`` as set; unset, True off loopback and None (by each request's
        scheme, ``console.cookies``) on it."""
        if self.secure_cookies is not None:
            return self.secure_cookies
        host, _port = self.listen_on()
        return None if is_loopback(host) else True

    def admin_token(self) -> SecretStr | None:
        """The admin token, read now; None when the console is read-only."""
        return None if self.admin_token_file is None else read_admin_token(self.admin_token_file)


def read_admin_token(path: Path) -> SecretStr:
    """The token in ``path`` (surrounding whitespace dropped); ``ConfigError`` naming the key,
    never the content, when it is unreadable or too short."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"console.admin_token_file: cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"console.admin_token_file: {path} is not UTF-8") from exc
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"console.admin_token_file: the token in {path} is shorter than "
            f"{MIN_TOKEN_LENGTH} characters"
        )
    return SecretStr(token)
