"""Organizers: plain queries on the caller's transaction."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from tpp_contracts.vocab import OrganizerKind

from tpp_registry.store import tables

org = tables.organizer
#: The unique index that keeps organizer names distinct in any case.
UNIQUE_NAME = "uq_organizer_lower_name"
_COLUMNS = [org.c.id, org.c.name, org.c.kind, org.c.province, org.c.country, org.c.contact]


async def add(db: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert an organizer; False (nothing written) when its name, in any case, is taken."""
    added = await db.scalar(
        insert(org)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[func.lower(org.c.name)])
        .returning(org.c.id)
    )
    return added is not None


async def get(
    db: AsyncSession, organizer_id: uuid.UUID, *, lock: bool = False
) -> dict[str, Any] | None:
    """An organizer's row, or None; ``lock`` takes its row lock."""
    query = select(*_COLUMNS).where(org.c.id == organizer_id)
    if lock:
        query = query.with_for_update()
    row = (await db.execute(query)).mappings().first()
    return None if row is None else dict(row)


async def save(db: AsyncSession, organizer_id: uuid.UUID, values: dict[str, Any]) -> bool:
    """Write an organizer's new details (its row is locked by the caller); False (nothing
    written) when another organizer has the name, in any case."""
    try:
        # A savepoint: the caller's transaction stays usable when the name is taken.
        async with db.begin_nested():
            await db.execute(
                update(org).where(org.c.id == organizer_id).values(**values, updated_at=func.now())
            )
    except IntegrityError as error:
        if UNIQUE_NAME in str(error.orig):
            return False
        raise
    return True


async def page(
    db: AsyncSession,
    *,
    kind: OrganizerKind | None,
    country: str | None,
    offset: int,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to ``limit`` organizers by name (any case) from ``offset``, of a kind or a country."""
    query = select(*_COLUMNS).order_by(func.lower(org.c.name), org.c.id)
    if kind is not None:
        query = query.where(org.c.kind == kind.value)
    if country is not None:
        query = query.where(org.c.country == country.upper())
    rows = await db.execute(query.offset(offset).limit(limit))
    return [dict(r) for r in rows.mappings()]
