"""Enrollment storage: queries and writes inside the caller's transaction; never commits."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
from sqlalchemy import RowMapping, case, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from tpp_contracts.vocab import EnrollmentStatus, SessionStatus
from tpp_plumbing.db.uow import Fused
from tpp_plumbing.db.writes import RawTransaction

from tpp_enrollment.domain import OCCUPYING, Places
from tpp_enrollment.store import tables

E = tables.enrollment
T = tables.trainee
V = tables.session_view
OCCUPYING_VALUES = [s.value for s in OCCUPYING]

#: An enrollment with the non-personal trainee attributes its events carry.
ENROLLMENT_COLUMNS = (*E.c, T.c.gender, T.c.profession)


def places(view: RowMapping | asyncpg.Record) -> Places:
    """The domain's view of a session_view row."""
    return Places(
        status=SessionStatus(view["status"]),
        capacity=view["capacity"],
        accepted=view["accepted"],
        review_required=view["review_required"],
        country_limit=view["country_limit"],
    )


async def lock_session(db: AsyncSession, session_id: uuid.UUID) -> RowMapping | None:
    """The session view row, locked: every decision about the session's places waits here.

    Locking moves the row's ``places_version``: an enrollment decided on an unlocked read
    (``enroll_if_unmoved``) is then refused, and decided again, if this transaction commits.
    """
    result = await db.execute(
        update(V)
        .where(V.c.session_id == session_id)
        .values(places_version=V.c.places_version + 1)
        .returning(*V.c)
    )
    return result.mappings().first()


async def get_session(db: AsyncSession, session_id: uuid.UUID) -> RowMapping | None:
    """The session view row, unlocked."""
    return (await db.execute(select(V).where(V.c.session_id == session_id))).mappings().first()


async def add_accepted(db: AsyncSession, session_id: uuid.UUID, delta: int) -> None:
    """Move the session's count of taken places."""
    if delta:
        await db.execute(
            update(V).where(V.c.session_id == session_id).values(accepted=V.c.accepted + delta)
        )


# --- enroll: on a fast unit of work (tpp_plumbing.db.uow), the hottest command ---------------
# Decided on an unlocked read, written by one statement only if the session's places did not
# move since (its places_version: every locker moves it).

# $1 session, $2 trainee, $3 the occupying statuses. The counts are taken only when the
# decision needs them: places per country under a limit; the waitlist when it may grow.
_READ_FOR_ENROLL = (
    "SELECT v.status, v.capacity, v.accepted, v.review_required, v.country_limit,"
    " v.places_version, t.id AS trainee_id, t.country, t.gender, t.profession, t.erased_at,"
    " EXISTS (SELECT FROM enrollment e WHERE e.session_id = $1 AND e.trainee_id = $2)"
    " AS enrolled,"
    " CASE WHEN v.country_limit IS NOT NULL THEN (SELECT count(*) FROM enrollment e"
    "  WHERE e.session_id = $1 AND e.country = t.country AND e.status = ANY($3::text[]))"
    "  END AS in_country,"
    " CASE WHEN NOT v.review_required"
    "  AND (v.accepted >= v.capacity OR v.country_limit IS NOT NULL)"
    "  THEN (SELECT count(*) FROM enrollment e WHERE e.session_id = $1"
    "  AND e.status = 'waitlisted') END AS waitlisted"
    " FROM session_view v LEFT JOIN trainee t ON t.id = $2 WHERE v.session_id = $1"
)
_LOCK_FOR_ENROLL = (
    "UPDATE session_view SET places_version = places_version + 1 WHERE session_id = $1"
)
# $1 id, $2 session, $3 trainee, $4 status, $5 the places_version read, $6 country. The
# session row's UPDATE takes its lock and re-reads it (READ COMMITTED): a locker that
# committed meanwhile moved the version, and nothing is written. The rest runs only with the
# row, so after the lock: the waitlist number (and the outbox ids the unit of work appends)
# follow every earlier decision about the session.
_NEW_ENROLLMENT = (
    "moved AS (UPDATE session_view SET places_version = places_version + 1,"
    " accepted = accepted + CASE WHEN $4::text = 'accepted' THEN 1 ELSE 0 END"
    " WHERE session_id = $2 AND places_version = $5 RETURNING session_id),"
    " added AS (INSERT INTO enrollment"
    " (id, session_id, trainee_id, status, waitlist_seq, country)"
    " SELECT $1, $2, $3, $4, CASE WHEN $4::text = 'waitlisted'"
    " THEN nextval('enrollment_waitlist_seq') END, $6 FROM moved RETURNING waitlist_seq)"
)


class PlacesMovedError(Exception):
    """The session's places moved since they were read: decide again, under the lock."""


class AlreadyEnrolledError(Exception):
    """The trainee has an enrollment in the session (one a session, whatever its status)."""


async def read_for_enroll(
    tx: RawTransaction, session_id: uuid.UUID, trainee_id: uuid.UUID
) -> asyncpg.Record | None:
    """What deciding an enrollment needs: the session view row with its ``places_version``,
    the trainee's profile (None values when unknown), whether the trainee is enrolled there
    already, the places their country holds (``in_country``, under a limit) and the
    waitlist's length (``waitlisted``, when it may grow). None: no session."""
    return await tx.fetchrow(_READ_FOR_ENROLL, session_id, trainee_id, OCCUPYING_VALUES)


async def lock_for_enroll(tx: RawTransaction, session_id: uuid.UUID) -> None:
    """Lock the session view row (until the transaction ends): what ``read_for_enroll``
    reads after it cannot move. It moves ``places_version``, as every locker does."""
    await tx.execute(_LOCK_FOR_ENROLL, session_id)


def new_enrollment(row: Mapping[str, Any], places_version: int) -> Fused:
    """Insert a new enrollment (taking a place if accepted) if the session's
    ``places_version`` is still the one read; returns its ``waitlist_seq`` (None unless
    waitlisted), or no row when the places moved."""
    args = (row["id"], row["session_id"], row["trainee_id"], row["status"], places_version)
    return Fused(
        _NEW_ENROLLMENT,
        (*args, row["country"]),
        wrote="added",
        returning="SELECT waitlist_seq FROM added",
        conflicts={"uq_enrollment_session_trainee": AlreadyEnrolledError},
    )


async def existing_enrollment(
    tx: RawTransaction, session_id: uuid.UUID, trainee_id: uuid.UUID
) -> asyncpg.Record | None:
    """The trainee's enrollment in the session (id, status), whatever its status."""
    return await tx.fetchrow(
        "SELECT id, status FROM enrollment WHERE session_id = $1 AND trainee_id = $2",
        session_id,
        trainee_id,
    )


async def get_trainee(db: AsyncSession, trainee_id: uuid.UUID) -> RowMapping | None:
    """A trainee by id."""
    return (await db.execute(select(T).where(T.c.id == trainee_id))).mappings().first()


async def get_enrollment(
    db: AsyncSession, enrollment_id: uuid.UUID, *, lock: bool = False
) -> RowMapping | None:
    """An enrollment with its trainee's country, gender and profession."""
    query = select(*ENROLLMENT_COLUMNS).join(T, T.c.id == E.c.trainee_id)
    query = query.where(E.c.id == enrollment_id)
    if lock:
        query = query.with_for_update(of=E)
    return (await db.execute(query)).mappings().first()


async def session_enrollments(
    db: AsyncSession, session_id: uuid.UUID, statuses: Sequence[EnrollmentStatus], *, lock: bool
) -> Sequence[RowMapping]:
    """A session's enrollments in these statuses: the waitlist first-come first."""
    query = (
        select(*ENROLLMENT_COLUMNS)
        .join(T, T.c.id == E.c.trainee_id)
        .where(E.c.session_id == session_id, E.c.status.in_([s.value for s in statuses]))
        .order_by(E.c.waitlist_seq.nulls_last(), E.c.created_at, E.c.id)
    )
    if lock:
        query = query.with_for_update(of=E)
    return (await db.execute(query)).mappings().all()


async def session_page(
    db: AsyncSession,
    session_id: uuid.UUID,
    status: EnrollmentStatus | None,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    """A page of a session's enrollments (in one status, if given): the others first by
    arrival, then the waitlist in its order, each waiter with its ``waitlist_position``."""
    waitlisted = E.c.status == EnrollmentStatus.WAITLISTED.value
    position = case(
        (
            waitlisted,
            func.row_number().over(partition_by=E.c.status, order_by=E.c.waitlist_seq),
        ),
        else_=literal(None),
    ).label("waitlist_position")
    query = select(E, position).where(E.c.session_id == session_id)
    if status is not None:
        query = query.where(E.c.status == status.value)
    query = query.order_by(E.c.waitlist_seq.nulls_first(), E.c.created_at, E.c.id)
    rows = await db.execute(query.limit(limit).offset(offset))
    return [dict(r) for r in rows.mappings()]


async def trainee_enrollments(db: AsyncSession, trainee_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every enrollment of a trainee, oldest first."""
    rows = await db.execute(select(E).where(E.c.trainee_id == trainee_id).order_by(E.c.created_at))
    return [dict(r) for r in rows.mappings()]


async def accepted_by_country(db: AsyncSession, session_id: uuid.UUID) -> dict[str, int]:
    """How many places each country holds in a session."""
    rows = await db.execute(
        select(E.c.country, func.count())
        .where(E.c.session_id == session_id, E.c.status.in_(OCCUPYING_VALUES))
        .group_by(E.c.country)
    )
    return {country: int(n) for country, n in rows}


async def accepted_in_country(db: AsyncSession, session_id: uuid.UUID, country: str) -> int:
    """How many places one country holds in a session."""
    count = await db.scalar(
        select(func.count()).where(
            E.c.session_id == session_id,
            E.c.country == country,
            E.c.status.in_(OCCUPYING_VALUES),
        )
    )
    return int(count or 0)


async def waitlist_position(db: AsyncSession, session_id: uuid.UUID, seq: int) -> int:
    """The 1-based place in the session's waitlist of the entry numbered ``seq``."""
    count = await db.scalar(
        select(func.count()).where(
            E.c.session_id == session_id,
            E.c.status == EnrollmentStatus.WAITLISTED.value,
            E.c.waitlist_seq <= seq,
        )
    )
    return int(count or 0)


async def next_waitlist_seq(db: AsyncSession) -> int:
    """The next number in waitlist order."""
    return int(await db.scalar(tables.waitlist_seq.next_value().select()) or 0)


async def next_certificate_serial(db: AsyncSession) -> int:
    """The next certificate serial."""
    return int(await db.scalar(tables.certificate_seq.next_value().select()) or 0)


async def set_status(
    db: AsyncSession, enrollment_ids: Sequence[uuid.UUID], status: EnrollmentStatus, **values: Any
) -> None:
    """Move enrollments to a status (and set other columns)."""
    if enrollment_ids:
        await db.execute(
            update(E)
            .where(E.c.id.in_(enrollment_ids))
            .values(status=status.value, updated_at=func.now(), **values)
        )
