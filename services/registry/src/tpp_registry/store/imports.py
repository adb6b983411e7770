"""Session imports: which CSV rows were imported already; plain queries on the caller's
transaction."""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Sequence

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tpp_registry.store import tables

imp = tables.session_import_row
_LOCK = zlib.crc32(b"tpp-registry-session-import")


async def lock(db: AsyncSession) -> None:
    """Take the import lock until the transaction ends (one import at a time)."""
    await db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})


async def organizers(db: AsyncSession) -> dict[str, uuid.UUID]:
    """Every organizer's id by its id (as text) and by its name in lower case."""
    org = tables.organizer
    rows = await db.execute(select(org.c.id, func.lower(org.c.name)))
    found: dict[str, uuid.UUID] = {}
    for organizer_id, name in rows:
        found[name] = organizer_id
        found[str(organizer_id)] = organizer_id
    return found


async def imported(db: AsyncSession, keys: Sequence[str]) -> dict[str, uuid.UUID]:
    """The sessions the rows of these keys created, by key (rows imported before)."""
    if not keys:
        return {}
    query = select(imp.c.row_key, imp.c.session_id).where(imp.c.row_key.in_(keys))
    return {key: sid for key, sid in await db.execute(query)}


async def add_rows(db: AsyncSession, rows: dict[str, uuid.UUID]) -> None:
    """Remember imported rows: each key with the session it created."""
    if rows:
        await db.execute(insert(imp), [{"row_key": k, "session_id": s} for k, s in rows.items()])
