"""The provider protocol: what every adapter implements, and the values it works with.

An adapter maps a canonical ``Invoice`` to its provider's request, makes the HTTP call, and
classifies the answer into an ``Outcome`` (``worker.outcome``). It never touches the database and
never sleeps for a retry: the engine owns both. Adding a provider means an adapter module with a
``SPEC`` (registered in ``worker.providers``) and a sandbox; nothing else changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel

from worker.durations import RateLimit
from worker.invoice import Invoice
from worker.outcome import Outcome
from worker.texts import cut
from worker.values import immutable

if TYPE_CHECKING:
    from worker.providers.connections import ConnectionPool

# What we keep of a provider's answer in synced.response / dead_letter.response: enough to
# diagnose, never a multi-megabyte page.
RESPONSE_LIMIT = 8 * 1024
# ``json.dumps(body, default=str)``, built once: with an option, dumps builds one per call.
_TEXT_OF_ANSWER = json.JSONEncoder(default=str)
# What we quote of a provider's text answer in an error message.
MESSAGE_LIMIT = 200
# What we quote of a JSON error's message and field errors: errors go to the outbox, logs and
# `status`, and an answer may be up to max_response_size.
DETAIL_LIMIT = 1000
# The most of one answer read into memory (``[http] max_response_size``); more is a failure.
MAX_RESPONSE_SIZE = 1024 * 1024


# How long a spent quota holds an account whose rate is not known (the config's default rate
# is per minute).
UNKNOWN_RATE_WINDOW = 60.0


@immutable
class Attempt:
    """One try at creating one invoice."""

    outbox_id: int
    account: str
    idempotency_key: str
    invoice: Invoice
    number: int
    prior_unknown: bool
    """An earlier attempt may have reached the provider, and what it did there is unknown."""
    since: datetime | None = None
    """When the row's first attempt began (the database's clock): whatever an earlier attempt
    created at the provider is newer, which bounds a lookup or tag scan."""
    send_by: float | None = None
    """``time.monotonic()`` after which this attempt must not send a create: its lease ends
    soon after, and then another worker may take the row and, finding nothing yet, send its
    own. An adapter that does slow work before its create (Billit's tag scan) checks it."""
    rate: RateLimit | None = None
    """The account's configured ``rate_limit``: the pace its provider allows, which bounds how
    long a spent quota takes to come back and how many reads a slow step may spend."""

    def rate_window(self, default: float = UNKNOWN_RATE_WINDOW) -> float:
        """The period of the account's rate limit (``default`` when none is known): the
        longest a provider's quota of that many requests per period takes to come back."""
        return default if self.rate is None else self.rate.period


@dataclass(frozen=True, kw_only=True, slots=True)
class Credentials:
    """What an adapter needs to authenticate; ``token`` is already resolved from env or file."""

    base_url: str
    token: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class HttpTimeouts:
    """The bounds of one HTTP exchange with a provider (``[http]``), and where its connections
    come from."""

    connect: float
    total: float
    """Seconds for the whole exchange, the answer's body included (a dripping body too)."""
    max_response_size: int = MAX_RESPONSE_SIZE
    """Bytes of an answer's body read, counted after decompression."""
    pool: ConnectionPool | None = field(default=None, compare=False, repr=False)
    """The connections the accounts' sessions share (the daemon's, one per process); None:
    each session opens its own (``worker.providers.http.new_session``)."""


class Provider(Protocol):
    """An invoicing provider's adapter, one instance per configured account."""

    name: ClassVar[str]

    def retry_is_safe(self, invoice: Invoice) -> bool:
        """Whether sending this invoice again after an unknown outcome cannot create a second one.

        True when the provider refuses a repeated invoice number, or when the adapter itself
        looks for the earlier attempt's invoice before sending again.
        """
        ...

    async def create_invoice(self, attempt: Attempt) -> Outcome:
        """Create the invoice at the provider and classify the answer. Never raises for an
        answer the provider gave; transport failures become ``Retry`` values too."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


ProviderFactory = Callable[[Credentials, Any, HttpTimeouts], Provider]
CredentialCheck = Callable[[Any, bool], str | None]
"""Given an account's validated options and whether it names a token source (``token``,
``token_env`` or ``token_file``): what is wrong with its credentials, as one line, or None."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ProviderSpec:
    """How the engine and config know a provider: its name, its account options, its factory.

    ``options`` is a pydantic model of the provider-specific keys of ``[accounts.NAME]`` (e.g.
    Refrens ``url_key``); the config refuses keys it does not declare.
    """

    name: str
    options: type[BaseModel]
    factory: ProviderFactory
    needs_token: bool = True
    check_credentials: CredentialCheck | None = None
    """When given, replaces the ``needs_token`` rule, for providers whose accounts can
    authenticate without a static token (Refrens: app-secret login from the options)."""


class NoOptions(BaseModel):
    """For providers without account options beyond the common ones."""

    model_config = {"extra": "forbid"}


def json_number(value: Decimal) -> int | float:
    """A Decimal as the JSON number a provider expects (models cap values at 15 digits, so the
    float is exact to the last digit written)."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def bounded(body: Any, limit: int = RESPONSE_LIMIT) -> Any:
    """A provider's answer cut to a size the database should keep (``head`` ends in the cut
    mark, so the scrub that follows also removes a secret the cut fell inside)."""
    text = body if isinstance(body, str) else _TEXT_OF_ANSWER.encode(body)
    if len(text) <= limit:
        return body
    return {"truncated": True, "head": cut(text, limit)}


@dataclass(frozen=True, kw_only=True, slots=True)
class OptionRules:
    """Which fields of a provider's request body ``provider_options`` may not touch.

    An option may add a field the adapter does not write; it may never replace or remove one
    the mapping wrote for this invoice (a key already in the body: nested objects are compared
    key by key), nor set a field in ``owned`` even where this invoice left it out (the number,
    ids, line items, totals, dates: what identifies or prices the document). ``replaceable``
    names the defaults an option may replace, with the JSON types it may replace them with.
    Paths are dotted: ``party_detail.party_id``.
    """

    owned: frozenset[str] = frozenset()
    replaceable: dict[str, tuple[type, ...]] = field(default_factory=dict)


class OptionConflict(ValueError):  # noqa: N818 - a refusal, named after what it refuses
    """``provider_options`` names a field the adapter owns; ``str()`` is the one-line reason."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"provider_options.{path}: {problem}")
        self.path = path


def check_options(
    body: Mapping[str, Any], options: Mapping[str, Any], rules: OptionRules, prefix: str = ""
) -> None:
    """Raise ``OptionConflict`` naming the first option that touches a field the adapter owns
    (see ``OptionRules``); ``body`` is the request as the mapping wrote it, before options."""
    for key, value in options.items():
        path = prefix + key
        allowed = rules.replaceable.get(path)
        if allowed is not None:
            if not _is_one_of(value, allowed):
                names = " or ".join(_JSON_TYPE_NAMES[kind] for kind in allowed)
                raise OptionConflict(path, f"expected {names} (it replaces a default)")
            continue
        if _names_owned(path, rules) or _respells(key, body):
            raise OptionConflict(path, _OWNED)
        if key not in body:
            continue
        current = body[key]
        if not (isinstance(current, dict) and isinstance(value, dict)):
            raise OptionConflict(path, _OWNED)
        check_options(current, value, rules, prefix=path + ".")


def _names_owned(path: str, rules: OptionRules) -> bool:
    # Compared without case: a provider that reads keys case-insensitively would take
    # "InvoiceNumber" or "Tags" for the field the adapter wrote.
    folded = path.casefold()
    named = [*rules.owned, *rules.replaceable]
    return any(folded == owned.casefold() for owned in named)


def _respells(key: str, body: Mapping[str, Any]) -> bool:
    """Whether ``key`` is another spelling (by case) of a key the mapping wrote."""
    folded = key.casefold()
    return any(written != key and written.casefold() == folded for written in body)


def merge_options(
    body: dict[str, Any], options: Mapping[str, Any], rules: OptionRules
) -> dict[str, Any]:
    """``provider_options`` merged into the request body last (docs/producers.md); nested
    objects merge. Options may only add fields: one touching a field the adapter owns raises
    ``OptionConflict`` (adapters refuse such an invoice as ``invalid_payload`` before this)."""
    check_options(body, options, rules)
    return _merged(body, options)


def _merged(body: dict[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(body)
    for key, value in options.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


_OWNED = (
    "the adapter writes this field itself, from the invoice; provider_options may only add "
    "fields it does not write"
)
_JSON_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", float: "a number"}


def _is_one_of(value: Any, kinds: tuple[type, ...]) -> bool:
    # bool is an int to Python but not to JSON: true is no invoice type id.
    if isinstance(value, bool):
        return bool in kinds
    return isinstance(value, kinds)
