"""After the training: evaluations and follow-ups, plain queries on the caller's connection."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import RowMapping, and_, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from tpp_contracts.vocab import EnrollmentStatus

from tpp_enrollment.store import tables

E = tables.enrollment
F = tables.follow_up


async def add_evaluation(db: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert an enrollment's evaluation; False (nothing written) when it has one."""
    stored = await db.scalar(
        pg_insert(tables.evaluation)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["enrollment_id"])
        .returning(tables.evaluation.c.id)
    )
    return stored is not None


async def add_follow_up(db: AsyncSession, values: dict[str, Any]) -> None:
    """Insert a follow-up."""
    await db.execute(insert(tables.follow_up).values(**values))


async def follow_ups(db: AsyncSession, enrollment_id: uuid.UUID) -> list[dict[str, Any]]:
    """An enrollment's follow-ups, oldest first."""
    rows = await db.execute(
        select(F).where(F.c.enrollment_id == enrollment_id).order_by(F.c.followed_up_on)
    )
    return [dict(r) for r in rows.mappings()]


async def completions(db: AsyncSession, after: date, until: date) -> Sequence[RowMapping]:
    """The enrollments completed after ``after`` and up to ``until``, oldest completion
    first: ``id``, ``session_id``, ``trainee_id``, ``completed_on`` and ``days``, the dates of
    their follow-ups (None without any)."""
    dates = (
        select(F.c.enrollment_id, func.array_agg(F.c.followed_up_on).label("days"))
        .group_by(F.c.enrollment_id)
        .subquery()
    )
    query = (
        select(E.c.id, E.c.session_id, E.c.trainee_id, E.c.completed_on, dates.c.days)
        .select_from(E.outerjoin(dates, dates.c.enrollment_id == E.c.id))
        .where(
            and_(
                E.c.status == EnrollmentStatus.COMPLETED.value,
                E.c.completed_on <= until,
                E.c.completed_on > after,
            )
        )
        .order_by(E.c.completed_on, E.c.id)
    )
    return (await db.execute(query)).mappings().all()
