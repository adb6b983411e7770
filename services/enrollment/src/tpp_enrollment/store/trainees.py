"""Trainees and the organizers that may nominate them: plain queries on the caller's
transaction; never commits."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy import RowMapping, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tpp_enrollment.store import tables

T = tables.trainee
TO = tables.trainee_organizer
E = tables.enrollment
V = tables.session_view

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


async def add(db: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert a trainee; False (nothing written) when its passport hash is registered."""
    created = await db.scalar(
        insert(T)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[T.c.passport_hash])
        .returning(T.c.id)
    )
    return created is not None


async def by_passport_hash(db: AsyncSession, passport_hash: bytes | None) -> RowMapping:
    """The trainee registered with this passport hash (one is)."""
    found = await db.execute(select(T).where(T.c.passport_hash == passport_hash))
    return found.mappings().one()


async def exists(db: AsyncSession, trainee_id: uuid.UUID) -> bool:
    """Whether the trainee is registered."""
    return await db.scalar(select(T.c.id).where(T.c.id == trainee_id)) is not None


async def link(
    db: AsyncSession, trainee_id: uuid.UUID, organizer_id: uuid.UUID, *, personal: bool
) -> bool:
    """Make the trainee the organizer's (an existing link stays as it is); whether the
    organizer may see the trainee's personal data."""
    await db.execute(
        insert(TO)
        .values(trainee_id=trainee_id, organizer_id=organizer_id, personal=personal)
        .on_conflict_do_nothing(index_elements=[TO.c.trainee_id, TO.c.organizer_id])
    )
    found = select(TO.c.personal).where(
        TO.c.trainee_id == trainee_id, TO.c.organizer_id == organizer_id
    )
    return bool(await db.scalar(found))


async def organizer_access(
    db: AsyncSession, trainee_id: uuid.UUID, organizer_id: uuid.UUID | None
) -> tuple[bool | None, bool]:
    """What ties the trainee to the organizer: its link's ``personal`` flag (None without a
    link), and whether the trainee is enrolled in one of the organizer's sessions."""
    personal = (
        select(TO.c.personal)
        .where(TO.c.trainee_id == trainee_id, TO.c.organizer_id == organizer_id)
        .scalar_subquery()
    )
    enrolled = sa.exists().where(
        E.c.trainee_id == trainee_id,
        E.c.session_id == V.c.session_id,
        V.c.organizer_id == organizer_id,
    )
    row = (await db.execute(select(personal, enrolled))).one()
    return row[0], row[1]


async def search(
    db: AsyncSession,
    name: str | None,
    country: str | None,
    organization: str | None,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    """Trainees not erased whose name / organization contain the words, in a country; by
    name."""
    query = select(T).where(T.c.erased_at.is_(None))
    if name:
        query = query.where(T.c.full_name.icontains(name, autoescape=True))
    if country:
        query = query.where(T.c.country == country.upper())
    if organization:
        query = query.where(T.c.organization.icontains(organization, autoescape=True))
    rows = await db.execute(query.order_by(T.c.full_name, T.c.id).limit(limit).offset(offset))
    return [dict(r) for r in rows.mappings()]


async def share(db: AsyncSession, trainee_id: uuid.UUID, organizer_id: uuid.UUID) -> None:
    """Link the trainee to the organizer with its personal data shown."""
    await db.execute(
        insert(TO)
        .values(trainee_id=trainee_id, organizer_id=organizer_id, personal=True)
        .on_conflict_do_update(
            index_elements=[TO.c.trainee_id, TO.c.organizer_id], set_={"personal": True}
        )
    )


async def unshare(db: AsyncSession, trainee_id: uuid.UUID, organizer_id: uuid.UUID) -> None:
    """Remove the trainee's link to the organizer."""
    await db.execute(
        delete(TO).where(TO.c.trainee_id == trainee_id, TO.c.organizer_id == organizer_id)
    )


async def lock(db: AsyncSession, trainee_id: uuid.UUID) -> RowMapping | None:
    """The trainee's row, locked."""
    found = await db.execute(select(T).where(T.c.id == trainee_id).with_for_update())
    return found.mappings().first()


async def erase(db: AsyncSession, trainee_id: uuid.UUID) -> RowMapping:
    """Empty the trainee's personal columns (``ERASED_VALUES``), record when, and empty what
    else names them: their enrollments' comments and notes, the stored responses that show
    them, and the name and hash of the import jobs whose files held them. The erased row."""
    erased = await db.execute(
        update(T)
        .where(T.c.id == trainee_id)
        .values(**ERASED_VALUES, erased_at=func.now())
        .returning(*T.c)
    )
    row = erased.mappings().one()
    for statement in (_ERASE_COMMENTS, _ERASE_NOTES, _ERASE_DECISION_NOTES):
        await db.execute(statement, {"id": trainee_id})
    await db.execute(_ERASE_REPLAYS, {"id": str(trainee_id)})
    await db.execute(_NEUTRALIZE_IMPORTS, {"id": trainee_id})
    await db.execute(_FORGET_IMPORTS, {"id": trainee_id})
    return row
