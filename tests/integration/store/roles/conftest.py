"""sql/roles.sql applied to each test's database, with a LOGIN user in each group role."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.store.roles.access import Logins
from tests.logins import apply_roles, login


@pytest.fixture
async def logins(dsn: str) -> AsyncIterator[Logins]:
    """roles.sql applied to a fresh database, and one LOGIN user in each group role."""
    await apply_roles(dsn)
    async with login(dsn, "producer", ("shop",)) as producer, login(dsn, "worker") as worker:
        yield Logins(producer=producer, worker=worker)
