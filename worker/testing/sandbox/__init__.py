"""Local servers that behave like each provider's documented API, with fault injection.

``SANDBOXES`` maps a provider name to its app factory: ``factory(faults=FaultConfig | None,
**options) -> aiohttp.web.Application``. Every sandbox shares the fault middleware
(``faults``) and the ``/_sandbox/`` introspection routes (``introspection``); ``server`` runs
one, in-process for tests or from the CLI. ``PROFILES`` holds each sandbox module's ``PROFILE``
(``profile``): what provider-neutral tests and the demo need to drive it.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from worker.testing.sandbox.billclap import app as billclap
from worker.testing.sandbox.billit import app as billit
from worker.testing.sandbox.profile import SandboxProfile
from worker.testing.sandbox.refrens import app as refrens

SANDBOXES: dict[str, Callable[..., web.Application]] = {
    "billclap": billclap.create_app,
    "refrens": refrens.create_app,
    "billit": billit.create_app,
}

PROFILES: dict[str, SandboxProfile] = {
    "billclap": billclap.PROFILE,
    "refrens": refrens.PROFILE,
    "billit": billit.PROFILE,
}
