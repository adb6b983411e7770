"""Annual plans and their revisions: plain queries on the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from tpp_registry.store import tables

plan = tables.annual_plan
rev = tables.annual_plan_revision


async def lock_current(db: AsyncSession, year: int) -> int:
    """Lock a year's plan and return its current revision (0: none yet).

    The first plan of a year: its row is created, then locked like any other.
    """
    await db.execute(pg_insert(plan).values(year=year).on_conflict_do_nothing())
    current = await db.scalar(select(plan.c.revision).where(plan.c.year == year).with_for_update())
    assert current is not None  # inserted above
    return int(current)


async def current(db: AsyncSession, year: int) -> int | None:
    """A year's current revision, or None (or 0) when it has no plan."""
    return await db.scalar(select(plan.c.revision).where(plan.c.year == year))


async def add_revision(db: AsyncSession, values: dict[str, Any]) -> None:
    """Store a new revision and make it the year's current one (the plan is locked)."""
    await db.execute(insert(rev).values(**values))
    await db.execute(
        update(plan).where(plan.c.year == values["year"]).values(revision=values["revision"])
    )


async def revision(db: AsyncSession, year: int, number: int) -> dict[str, Any]:
    """One revision of a year's plan (it exists)."""
    query = select(rev).where(rev.c.year == year, rev.c.revision == number)
    return dict((await db.execute(query)).mappings().one())


async def revisions(db: AsyncSession, year: int) -> list[dict[str, Any]]:
    """Every revision of a year's plan, the first first."""
    rows = await db.execute(select(rev).where(rev.c.year == year).order_by(rev.c.revision))
    return [dict(r) for r in rows.mappings()]


async def currents(db: AsyncSession) -> list[dict[str, Any]]:
    """The current revision of every year's plan, by year."""
    query = (
        select(rev)
        .join(plan, (plan.c.year == rev.c.year) & (plan.c.revision == rev.c.revision))
        .order_by(rev.c.year)
    )
    return [dict(r) for r in (await db.execute(query)).mappings()]
