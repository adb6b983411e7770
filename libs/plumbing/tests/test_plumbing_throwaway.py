"""Throwaway databases on a real PostgreSQL: what a killed run left is dropped, and only that."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid

import asyncpg
import pytest
from tpp_plumbing.db.engine import asyncpg_dsn
from tpp_plumbing.db.throwaway import create_throwaway, drop_abandoned
from tpp_testkit import Infrastructure

pytestmark = pytest.mark.integration


def _ended_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(child.stdout)


async def test_only_the_databases_of_ended_processes_are_dropped(
    infrastructure: Infrastructure,
) -> None:
    admin = await asyncpg.connect(asyncpg_dsn(infrastructure.admin_url))
    tag = uuid.uuid4().hex[:8]
    ours, left, plain = f"ours_{tag}", f"left_{tag}", f"plain_{tag}"
    try:
        await create_throwaway(admin, ours, "postgres")
        await create_throwaway(admin, left, "postgres")
        # As a killed run leaves it: made by a process that is gone.
        note = await admin.fetchval(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            left,
        )
        assert re.search(r"process \d+ on ", note)
        note = re.sub(r"process \d+", f"process {_ended_pid()}", note)
        await admin.execute(f"COMMENT ON DATABASE \"{left}\" IS '{note}'")
        await admin.execute(f'CREATE DATABASE "{plain}"')  # not a throwaway one

        dropped = await drop_abandoned(admin)

        names = {r["datname"] for r in await admin.fetch("SELECT datname FROM pg_database")}
        assert left in dropped
        assert left not in names
        assert {ours, plain} <= names  # this process lives; the other was never a throwaway
    finally:
        for name in (ours, left, plain):
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
