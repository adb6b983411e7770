"""Throwaway databases migrated to head for each service, and the run's ``databases`` fixture."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from tpp_plumbing.db.throwaway import create_throwaway, drop_abandoned

from tpp_testkit.environment import ROOT
from tpp_testkit.infrastructure import Infrastructure
from tpp_testkit.stalls import bounded_teardown


def _with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


@dataclass
class ThrowawayDatabases:
    """Creates throwaway, migrated databases owned by a service's role."""

    infra: Infrastructure
    run_id: str
    created: list[str]

    async def create(self, service: str, label: str = "") -> str:
        """A new database migrated to head for ``service``; returns its SQLAlchemy URL.

        The first one drops what killed runs left (``drop_abandoned``)."""
        name = f"{service}_{self.run_id}{label}"
        owner = make_url(self.infra.service_urls[service]).username
        assert owner is not None
        conn = await asyncpg.connect(self.infra.admin_url)
        try:
            if not self.created:
                dropped = await drop_abandoned(conn)
                if dropped:
                    print(f"\ndropped {len(dropped)} databases of ended runs: {', '.join(dropped)}")
            await create_throwaway(conn, name, owner)
        finally:
            await conn.close()
        self.created.append(name)
        url = _with_database(self.infra.service_urls[service], name)
        await asyncio.to_thread(_migrate, service, url)
        return url

    async def drop_all(self) -> None:
        """Drop every database this run created."""
        conn = await asyncpg.connect(self.infra.admin_url)
        try:
            for name in self.created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def run_alembic(service: str, url: str, *command: str) -> None:
    """Run ``alembic <command>`` on ``service``'s migrations against the database at ``url``."""
    env = os.environ | {f"TPP_{service.upper()}_DATABASE_URL": url}
    subprocess.run(  # noqa: S603 - fixed command, our own config file
        [
            sys.executable,
            "-m",
            "alembic",
            "-c",
            str(ROOT / "services" / service / "alembic.ini"),
            *command,
        ],
        check=True,
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=300,
    )


def _migrate(service: str, url: str) -> None:
    run_alembic(service, url, "upgrade", "head")


@pytest.fixture(scope="session")
async def databases(
    infrastructure: Infrastructure, run_id: str
) -> AsyncIterator[ThrowawayDatabases]:
    """This run's throwaway databases, dropped at the end."""
    dbs = ThrowawayDatabases(infrastructure, run_id, [])
    yield dbs
    await bounded_teardown(dbs.drop_all(), "dropping the run's databases")
