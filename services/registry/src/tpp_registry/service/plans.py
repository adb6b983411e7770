"""Annual plans: how many sessions a year should hold, revised as the year is planned."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tpp_contracts.registry import AnnualPlanSetV1
from tpp_plumbing.messaging.outbox import Outbox
from tpp_plumbing.web.problems import NotFoundError

from tpp_registry.api.models import Plan, PlanIn
from tpp_registry.service.common import check_version
from tpp_registry.store import tables

plan = tables.annual_plan
rev = tables.annual_plan_revision
_FIELDS = ("planned_sessions", "planned_overseas_sessions", "budget", "currency", "note")


class PlanService:
    """Sets and revises annual plans, keeping every revision; each one is a plan event."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], outbox: Outbox) -> None:
        self._sessions = sessions
        self._outbox = outbox

    async def set(self, year: int, data: PlanIn, expected: int | None = None) -> Plan:
        """Set a year's plan: a new revision unless it equals the current one.

        ``expected`` is the revision the change is based on (412 when it is not current).
        """
        async with self._sessions() as db, db.begin():
            # The first plan of a year: create its row, then lock it like any other.
            await db.execute(pg_insert(plan).values(year=year).on_conflict_do_nothing())
            current = await db.scalar(
                select(plan.c.revision).where(plan.c.year == year).with_for_update()
            )
            assert current is not None  # inserted above
            check_version(expected, current, what="revision")
            if current > 0:
                latest = await _revision(db, year, current)
                if latest.model_dump(include=set(_FIELDS)) == data.model_dump():
                    return latest
            values = data.model_dump() | {"year": year, "revision": current + 1}
            await db.execute(insert(rev).values(**values))
            await db.execute(update(plan).where(plan.c.year == year).values(revision=current + 1))
            await self._outbox.add(db, [AnnualPlanSetV1(**values)])
            return await _revision(db, year, current + 1)

    async def get(self, year: int) -> Plan:
        """The current plan of a year."""
        async with self._sessions() as db:
            current = await db.scalar(select(plan.c.revision).where(plan.c.year == year))
            if not current:
                raise NotFoundError(f"no plan for {year}")
            return await _revision(db, year, current)

    async def revisions(self, year: int) -> list[Plan]:
        """Every revision of a year's plan, the first first."""
        async with self._sessions() as db:
            rows = await db.execute(select(rev).where(rev.c.year == year).order_by(rev.c.revision))
            plans = [_plan(r) for r in rows.mappings()]
        if not plans:
            raise NotFoundError(f"no plan for {year}")
        return plans

    async def list(self) -> list[Plan]:
        """The current plan of every year, by year."""
        query = (
            select(rev)
            .join(plan, (plan.c.year == rev.c.year) & (plan.c.revision == rev.c.revision))
            .order_by(rev.c.year)
        )
        async with self._sessions() as db:
            return [_plan(r) for r in (await db.execute(query)).mappings()]


async def _revision(db: AsyncSession, year: int, revision: int) -> Plan:
    row = (
        (await db.execute(select(rev).where(rev.c.year == year, rev.c.revision == revision)))
        .mappings()
        .one()
    )
    return _plan(row)


def _plan(row: Any) -> Plan:
    return Plan.model_validate(dict(row))
