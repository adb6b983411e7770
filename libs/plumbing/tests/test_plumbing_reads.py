"""Raw reads and LISTEN on a real PostgreSQL: notifications, and a lost connection's gap."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncpg
import pytest
from tpp_plumbing.db import reads
from tpp_plumbing.db.engine import asyncpg_dsn
from tpp_plumbing.db.reads import DatabaseUnavailableError, ReadPool
from tpp_testkit import Infrastructure

pytestmark = pytest.mark.integration


async def _until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_reads_and_notifications_survive_a_killed_connection(
    infrastructure: Infrastructure, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reads, "RETRY_S", 0.05)
    dsn = asyncpg_dsn(infrastructure.admin_url)
    pool = ReadPool(dsn, max_size=2)
    changes: list[float] = []
    admin = await asyncpg.connect(dsn)
    try:
        assert [tuple(r) for r in await pool.fetch("SELECT $1::int + 1", 41)] == [(42,)]
        pool.listen("tpp_test_reads", lambda: changes.append(time.monotonic()))
        await _until(lambda: pool.listening("tpp_test_reads"))
        connected = len(changes)
        assert connected == 1  # a new connection may have missed notifications

        await admin.execute("SELECT pg_notify('tpp_test_reads', '')")
        await _until(lambda: len(changes) == connected + 1)

        # The server ends the listening connection (a restart, an operator): the gap is
        # reported, and a new connection listens again.
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE query LIKE 'LISTEN %tpp_test_reads%' AND pid <> pg_backend_pid()"
        )
        assert killed == 1
        await _until(lambda: len(changes) >= connected + 3 and pool.listening("tpp_test_reads"))
        before = len(changes)
        await admin.execute("SELECT pg_notify('tpp_test_reads', '')")
        await _until(lambda: len(changes) == before + 1)

        # The pool's own connections are replaced as well.
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = '' AND query = 'SELECT $1::int + 1'"
        )
        await asyncio.sleep(0.1)
        assert [tuple(r) for r in await pool.fetch("SELECT $1::int + 1", 1)] == [(2,)]
    finally:
        await admin.close()
        await pool.close()
    assert not pool.listening("tpp_test_reads")


async def test_an_unreachable_database_is_reported_as_unavailable() -> None:
    pool = ReadPool("postgresql://nobody@127.0.0.1:9/nothing", max_size=1)
    with pytest.raises(DatabaseUnavailableError) as raised:
        await pool.fetch("SELECT 1")
    assert isinstance(raised.value, OSError)  # the services' handlers answer 503 for it
    await pool.close()


async def test_a_snapshot_sees_one_state_of_the_database(infrastructure: Infrastructure) -> None:
    dsn = asyncpg_dsn(infrastructure.admin_url)
    pool = ReadPool(dsn, max_size=2)
    admin = await asyncpg.connect(dsn)
    table = f"tpp_test_snapshot_{time.monotonic_ns()}"
    try:
        await admin.execute(f"CREATE TABLE {table} (n int)")
        await admin.execute(f"INSERT INTO {table} VALUES (1)")
        async with pool.snapshot() as conn:
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 1
            await admin.execute(f"INSERT INTO {table} VALUES (2)")  # committed meanwhile
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 1
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await conn.execute(f"INSERT INTO {table} VALUES (3)")
        assert [tuple(r) for r in await pool.fetch(f"SELECT count(*) FROM {table}")] == [(2,)]
    finally:
        await admin.execute(f"DROP TABLE IF EXISTS {table}")
        await admin.close()
        await pool.close()
