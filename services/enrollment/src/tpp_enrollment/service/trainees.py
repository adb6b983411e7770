"""Trainees: registration (one per person: passport number + country) and erasure."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from tpp_contracts.enrollment import TraineeErasedV1
from tpp_contracts.envelope import new_id
from tpp_plumbing.db.uow import UnitsOfWork
from tpp_plumbing.web.problems import NotFoundError

from tpp_enrollment.api.models import Trainee, TraineeIn
from tpp_enrollment.events import trainee_registered
from tpp_enrollment.personal import PersonalData
from tpp_enrollment.store import tables

T = tables.trainee
E = tables.enrollment
TO = tables.trainee_organizer

#: What erasure empties: every personal column of the trainee.
ERASED_VALUES: dict[str, Any] = {
    "full_name": None,
    "organization": None,
    "passport_hash": None,
    "passport_number_sealed": None,
    "email_sealed": None,
    "birth_date_sealed": None,
}
# Free texts written about the trainee's enrollments may name them: emptied too.
_ERASE_COMMENTS = text(
    "UPDATE evaluation SET comment = NULL WHERE comment IS NOT NULL"
    " AND enrollment_id IN (SELECT id FROM enrollment WHERE trainee_id = :id)"
)
_ERASE_NOTES = text(
    "UPDATE follow_up SET note = NULL WHERE note IS NOT NULL"
    " AND enrollment_id IN (SELECT id FROM enrollment WHERE trainee_id = :id)"
)
_ERASE_DECISION_NOTES = text(
    "UPDATE enrollment SET note = NULL WHERE note IS NOT NULL AND trainee_id = :id"
)
# The import jobs whose files held the trainee: the file's name and hash describe the file's
# people; the counts stay. A neutralized job no longer matches a new upload of the same file.
_NEUTRALIZE_IMPORTS = text(
    "UPDATE import_job SET filename = NULL, sha256 = 'erased:' || id::text"
    " WHERE id IN (SELECT job_id FROM import_trainee WHERE trainee_id = :id)"
)
_FORGET_IMPORTS = text("DELETE FROM import_trainee WHERE trainee_id = :id")
# Stored responses of earlier requests (Idempotency-Key) that show the trainee.
_ERASE_REPLAYS = text(
    "DELETE FROM idempotency_key WHERE body IS NOT NULL"
    " AND position(convert_to(:id, 'UTF8') IN body) > 0"
)


class TraineeService:
    """Registers and erases trainees; their personal data never leaves this service."""

    def __init__(self, units: UnitsOfWork, personal: PersonalData) -> None:
        self._uow = units
        self._personal = personal

    async def register_trainee(
        self, data: TraineeIn, organizer_id: uuid.UUID | None = None
    ) -> tuple[Trainee, bool]:
        """Register a trainee; the same passport and country returns the existing one.

        An organizer (``organizer_id``) registering a new trainee may see its personal data;
        matching an existing one by the full record makes that trainee the organizer's to
        nominate, but shows it only what an operator shared (else the record without its
        personal fields).
        """
        trainee_id = new_id()
        sealed = self._personal.seal_trainee(
            trainee_id, data.passport_number, data.country, data.email, data.birth_date
        )
        row = {
            "id": trainee_id,
            "full_name": data.full_name,
            "country": data.country,
            "gender": data.gender.value,
            "profession": data.profession.value,
            "organization": data.organization,
        }
        async with self._uow() as uow:
            db = uow.db
            created = await db.scalar(
                insert(T)
                .values(**row, **sealed)
                .on_conflict_do_nothing(index_elements=[T.c.passport_hash])
                .returning(T.c.id)
            )
            if created is None:
                existing = await db.execute(
                    select(T).where(T.c.passport_hash == sealed["passport_hash"])
                )
                found = dict(existing.mappings().one())
                trainee = Trainee.model_validate(self._personal.open_trainee(found))
                if organizer_id is not None and not await self._link(
                    db, trainee.id, organizer_id, personal=False
                ):
                    trainee = trainee.without_personal_data()
                return trainee, False
            uow.emit(trainee_registered(row))
            if organizer_id is not None:
                await self._link(db, trainee_id, organizer_id, personal=True)
        plain = data.model_dump() | {"passport_number": data.passport_number.upper()}
        return Trainee.model_validate(plain | {"id": trainee_id}), True

    async def _link(
        self, db: AsyncSession, trainee_id: uuid.UUID, organizer_id: uuid.UUID, *, personal: bool
    ) -> bool:
        """Make the trainee the organizer's (an existing link stays as it is); whether the
        organizer may see the trainee's personal data."""
        await db.execute(
            insert(TO)
            .values(trainee_id=trainee_id, organizer_id=organizer_id, personal=personal)
            .on_conflict_do_nothing(index_elements=[TO.c.trainee_id, TO.c.organizer_id])
        )
        link = select(TO.c.personal).where(
            TO.c.trainee_id == trainee_id, TO.c.organizer_id == organizer_id
        )
        return bool(await db.scalar(link))

    async def share(self, trainee_id: uuid.UUID, organizer_id: uuid.UUID) -> None:
        """Let an organizer nominate the trainee by id and see its personal data (operators)."""
        async with self._uow() as uow:
            db = uow.db
            if await db.scalar(select(T.c.id).where(T.c.id == trainee_id)) is None:
                raise NotFoundError(f"no trainee {trainee_id}")
            await db.execute(
                insert(TO)
                .values(trainee_id=trainee_id, organizer_id=organizer_id, personal=True)
                .on_conflict_do_update(
                    index_elements=[TO.c.trainee_id, TO.c.organizer_id], set_={"personal": True}
                )
            )

    async def unshare(self, trainee_id: uuid.UUID, organizer_id: uuid.UUID) -> None:
        """Withdraw what :meth:`share` (or the organizer's own registration) gave; a trainee
        enrolled in the organizer's sessions stays its to see, without personal data."""
        async with self._uow() as uow:
            db = uow.db
            if await db.scalar(select(T.c.id).where(T.c.id == trainee_id)) is None:
                raise NotFoundError(f"no trainee {trainee_id}")
            await db.execute(
                delete(TO).where(TO.c.trainee_id == trainee_id, TO.c.organizer_id == organizer_id)
            )

    async def erase(self, trainee_id: uuid.UUID) -> Trainee:
        """Erase a trainee's personal data; the enrollments and the figures stay.

        Keeps the id, country, gender and profession (what the events carry); empties the
        name, organization, passport (sealed and hashed), email, birth date, the comments of
        their evaluations and the notes of their follow-ups, and the file name and hash of
        every import job whose file held them (the counts stay); records when. The trainee is
        never matched again: registering the same passport later creates a new trainee.
        Erasing again changes nothing and publishes nothing.
        """
        async with self._uow() as uow:
            db = uow.db
            current = await db.execute(select(T).where(T.c.id == trainee_id).with_for_update())
            row = current.mappings().first()
            if row is None:
                raise NotFoundError(f"no trainee {trainee_id}")
            if row["erased_at"] is not None:
                return Trainee.model_validate(dict(row))
            erased = await db.execute(
                update(T)
                .where(T.c.id == trainee_id)
                .values(**ERASED_VALUES, erased_at=func.now())
                .returning(*T.c)
            )
            result = dict(erased.mappings().one())
            for statement in (_ERASE_COMMENTS, _ERASE_NOTES, _ERASE_DECISION_NOTES):
                await db.execute(statement, {"id": trainee_id})
            await db.execute(_ERASE_REPLAYS, {"id": str(trainee_id)})
            await db.execute(_NEUTRALIZE_IMPORTS, {"id": trainee_id})
            await db.execute(_FORGET_IMPORTS, {"id": trainee_id})
            uow.emit(TraineeErasedV1(trainee_id=trainee_id))
        return Trainee.model_validate(result)
