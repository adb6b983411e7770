"""The registry refuses to start on a database its migrations have not reached yet."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from tpp_plumbing.db.schema import SchemaBehindError, shipped_head
from tpp_registry.app import MIGRATIONS, create_app
from tpp_registry.config import Settings
from tpp_testkit import run_alembic

pytestmark = pytest.mark.integration


def app_on(url: str) -> Any:
    return create_app(
        Settings(database_url=url, relay_enabled=False, consumers_enabled=False, log_json=False)
    )


async def test_a_database_one_migration_behind_stops_the_start_with_one_clear_line(
    databases: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url = await databases.create("registry", "_behind")
    await asyncio.to_thread(run_alembic, "registry", url, "downgrade", "-1")
    head, _ = shipped_head(MIGRATIONS)
    app = app_on(url)
    with caplog.at_level(logging.ERROR), pytest.raises(SchemaBehindError):
        async with app.router.lifespan_context(app):
            pytest.fail("the app served on an old schema")
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(lines) == 1
    assert lines[0].startswith("database schema of registry is behind: revision ")
    assert f"expected {head}" in lines[0]
    assert "revision none" not in lines[0]


async def test_a_database_at_head_starts(databases: Any) -> None:
    app = app_on(await databases.create("registry", "_at_head"))
    async with app.router.lifespan_context(app):
        assert (await app.state.runtime.readiness())["postgresql"] == "ok"
