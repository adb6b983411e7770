"""Organizers: plain queries on the caller's transaction."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from tpp_contracts.vocab import OrganizerKind

from tpp_registry.store import tables

org = tables.organizer
#: The unique index that keeps organizer names distinct in any case.
UNIQUE_NAME = "uq_organizer_lower_name"
_COLUMNS = [org.c.id, org.c.name, org.c.kind, org.c.province, org.c.country, org.c.contact]


async def add(db: AsyncSession, values: dict[str, Any]) -> None:
    """Insert an organizer (``IntegrityError`` on ``UNIQUE_NAME`` when the name is taken)."""
    await db.execute(insert(org).values(**values))


async def get(
    db: AsyncSession, organizer_id: uuid.UUID, *, lock: bool = False
) -> dict[str, Any] | None:
    """An organizer's row, or None; ``lock`` takes its row lock."""
    query = select(*_COLUMNS).where(org.c.id == organizer_id)
    if lock:
        query = query.with_for_update()
    row = (await db.execute(query)).mappings().first()
    return None if row is None else dict(row)


async def save(db: AsyncSession, organizer_id: uuid.UUID, values: dict[str, Any]) -> None:
    """Write an organizer's new details (its row is locked by the caller)."""
    await db.execute(
        update(org).where(org.c.id == organizer_id).values(**values, updated_at=func.now())
    )


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
