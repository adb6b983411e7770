"""After the training: evaluations and follow-ups, plain writes on the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from tpp_enrollment.store import tables


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
