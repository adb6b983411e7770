"""Trainee registration: one trainee per person (passport number + country)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tpp_plumbing.outbox import Outbox

from tpp_enrollment import tables
from tpp_enrollment.events import trainee_registered
from tpp_enrollment.schemas import Trainee, TraineeIn

T = tables.trainee


class TraineeService:
    """Registers trainees; their personal data never leaves this service."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], outbox: Outbox) -> None:
        self._sessions = sessions
        self._outbox = outbox

    async def register_trainee(self, data: TraineeIn) -> tuple[Trainee, bool]:
        """Register a trainee; the same passport and country returns the existing one."""
        row = data.model_dump() | {
            "id": uuid.uuid4(),
            "passport_number": data.passport_number.upper(),
        }
        async with self._sessions() as db, db.begin():
            created = await db.scalar(
                insert(T)
                .values(**row)
                .on_conflict_do_nothing(constraint="uq_trainee_passport_country")
                .returning(T.c.id)
            )
            if created is None:
                existing = await db.execute(
                    select(T).where(
                        T.c.passport_number == row["passport_number"],
                        T.c.country == data.country,
                    )
                )
                return Trainee.model_validate(dict(existing.mappings().one())), False
            await self._outbox.add(db, [trainee_registered(row)])
        return Trainee.model_validate(row), True
