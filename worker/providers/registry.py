"""The provider registry: each adapter module contributes one ``ProviderSpec``."""

from __future__ import annotations

from worker.providers.base import ProviderSpec
from worker.providers.billclap.adapter import SPEC as BILLCLAP
from worker.providers.billit.adapter import SPEC as BILLIT
from worker.providers.refrens.adapter import SPEC as REFRENS

PROVIDERS: dict[str, ProviderSpec] = {spec.name: spec for spec in (BILLCLAP, REFRENS, BILLIT)}
