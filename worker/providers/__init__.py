"""The provider registry: each adapter module contributes one ``ProviderSpec``."""

from __future__ import annotations

from worker.providers.base import ProviderSpec
from worker.providers.billclap import SPEC as BILLCLAP
from worker.providers.billit import SPEC as BILLIT
from worker.providers.refrens import SPEC as REFRENS

PROVIDERS: dict[str, ProviderSpec] = {spec.name: spec for spec in (BILLCLAP, REFRENS, BILLIT)}
