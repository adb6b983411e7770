"""Each service's tables (the code's metadata) are what its migrations build, column for
column and index for index: a change to one without the other fails here."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine
from tpp_plumbing.testing import SERVICES, ThrowawayDatabases

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("service", SERVICES)
async def test_the_tables_are_what_the_migrations_build(
    databases: ThrowawayDatabases, service: str
) -> None:
    url = await databases.create(service, "_schema")
    metadata = importlib.import_module(f"tpp_{service}.tables").metadata
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:

            def differences(sync: Any) -> list[Any]:
                return list(compare_metadata(MigrationContext.configure(sync), metadata))

            found = await conn.run_sync(differences)
    finally:
        await engine.dispose()
    assert found == []
