"""A service refuses a database whose schema is older than the migrations it ships.

At start the service reads the database's Alembic revision and compares it with the head of
its own migrations (``services/<name>/alembic``). A database behind that head (or never
migrated) would fail requests one by one on a missing column; the service stops at once
instead, with one log line naming the service and both revisions. A revision the service
does not know is a newer schema (a later release migrated, this one is rolling back or not
yet replaced): the expand-then-contract migrations keep it readable, so the service starts.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)


class SchemaBehindError(RuntimeError):
    """The database's schema is older than the service's migrations."""


def shipped_head(migrations: Path) -> tuple[str, set[str]]:
    """The head revision of the migrations folder ``migrations`` and every revision it knows."""
    script = ScriptDirectory(str(migrations))
    known = {revision.revision for revision in script.walk_revisions()}
    return script.get_current_head() or "", known


async def database_revisions(engine: AsyncEngine) -> set[str]:
    """The revisions ``alembic_version`` holds (none: never migrated)."""
    async with engine.connect() as conn:
        if await conn.scalar(text("SELECT to_regclass('alembic_version')")) is None:
            return set()
        rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
        return set(rows.scalars())


async def check_schema(engine: AsyncEngine, migrations: Path, service: str) -> None:
    """Raise SchemaBehindError, after logging why, when the database is behind the head."""
    head, known = shipped_head(migrations)
    current = await database_revisions(engine)
    if head in current:
        return
    if current and not current <= known:
        log.warning(
            "database schema of %s is newer than this version: revision %s, expected %s",
            service,
            ", ".join(sorted(current)),
            head,
        )
        return
    found = ", ".join(sorted(current)) or "none"
    log.error(
        "database schema of %s is behind: revision %s, expected %s; run the migrations"
        " (deploy/migrate.py) before this version",
        service,
        found,
        head,
    )
    raise SchemaBehindError(f"{service}: database at revision {found}, expected {head}")
