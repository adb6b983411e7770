"""Each service's tables (the code's metadata) are what its migrations build, column for
column and index for index: a change to one without the other fails here."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine
from tpp_testkit import SERVICES, ThrowawayDatabases, run_alembic

pytestmark = pytest.mark.integration


def _metadata(service: str) -> Any:
    # A service's tables live in store/tables.py (the service shape) or, before, tables.py.
    for module in (f"tpp_{service}.store.tables", f"tpp_{service}.tables"):
        try:
            return importlib.import_module(module).metadata
        except ModuleNotFoundError:
            continue
    raise LookupError(f"no tables module in tpp_{service}")


@pytest.mark.parametrize("service", SERVICES)
async def test_the_tables_are_what_the_migrations_build(
    databases: ThrowawayDatabases, service: str
) -> None:
    url = await databases.create(service, "_schema")
    metadata = _metadata(service)
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:

            def differences(sync: Any) -> list[Any]:
                return list(compare_metadata(MigrationContext.configure(sync), metadata))

            found = await conn.run_sync(differences)
    finally:
        await engine.dispose()
    assert found == []


#: The tables every command of a service writes (each service's gentle_autovacuum revision).
HOT_TABLES = {
    "registry": ("outbox_message", "audit_log"),
    "enrollment": ("enrollment", "session_view", "outbox_message", "audit_log"),
}


async def _autovacuum_settings(url: str, tables: tuple[str, ...]) -> dict[str, Any]:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        options = await conn.fetch(
            "SELECT relname, coalesce(reloptions, '{}') AS options FROM pg_class"
            " WHERE relname = ANY($1::text[]) AND relkind = 'r'",
            list(tables),
        )
        unsampled = await conn.fetch(
            "SELECT attname FROM pg_attribute"
            " WHERE attrelid = 'outbox_message'::regclass AND attnum > 0 AND attstattarget = 0"
        )
    finally:
        await conn.close()
    return {
        "options": {row["relname"]: sorted(row["options"]) for row in options},
        "unsampled": sorted(row["attname"] for row in unsampled),
    }


#: The revision before each service's gentle_autovacuum migration.
BEFORE_GENTLE = {"registry": "0401_audit_log", "enrollment": "0703_autovacuum_hot_tables"}


@pytest.mark.parametrize("service", sorted(HOT_TABLES))
async def test_the_hot_tables_are_analyzed_seldom_and_vacuumed_gently(
    databases: ThrowawayDatabases, service: str
) -> None:
    url = await databases.create(service, "_autovacuum")
    tables = HOT_TABLES[service]
    found = await _autovacuum_settings(url, tables)
    expected = {}
    factors = {"outbox_message": 1.0, "audit_log": 1.0, "enrollment": 0.5}
    for table in tables:
        options = ["autovacuum_vacuum_cost_delay=20"]
        if table in factors:
            options.append(f"autovacuum_analyze_scale_factor={factors[table]}")
        if table in ("enrollment", "session_view", "outbox_message") and service == "enrollment":
            options += [  # 0703's scale factors stay
                "autovacuum_vacuum_insert_scale_factor=0.02",
                "autovacuum_vacuum_scale_factor=0.02",
            ]
        expected[table] = sorted(options)
    assert found == {"options": expected, "unsampled": ["headers", "payload"]}

    # The migration's downgrade gives PostgreSQL's defaults back (0703's settings stay).
    await asyncio.to_thread(run_alembic, service, url, "downgrade", BEFORE_GENTLE[service])
    found = await _autovacuum_settings(url, tables)
    assert found["unsampled"] == []
    assert all(
        not any("cost_delay" in o or "analyze" in o for o in options)
        for options in found["options"].values()
    )
