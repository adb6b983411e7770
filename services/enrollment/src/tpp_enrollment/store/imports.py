"""Import storage: jobs, and the set-based statements of a chunk of nominations.

Every statement of a chunk takes all its rows at once (arrays): a constant number of round
trips per chunk, whatever its size.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    Interval,
    Row,
    RowMapping,
    and_,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from tpp_enrollment.store import tables
from tpp_enrollment.store.enrollments import OCCUPYING_VALUES

J = tables.import_job

#: A new person's row, as the import prepares it (the order of ``new_trainees``' arrays).
TRAINEE_COLUMNS = (
    "id",
    "full_name",
    "country",
    "gender",
    "profession",
    "organization",
    "passport_hash",
    "passport_number_sealed",
    "email_sealed",
    "birth_date_sealed",
)

_NEW_TRAINEES = text(
    "INSERT INTO trainee (id, full_name, country, gender, profession, organization,"
    " passport_hash, passport_number_sealed, email_sealed, birth_date_sealed)"
    " SELECT * FROM unnest(CAST(:id AS uuid[]), CAST(:full_name AS text[]),"
    " CAST(:country AS text[]), CAST(:gender AS text[]), CAST(:profession AS text[]),"
    " CAST(:organization AS text[]), CAST(:passport_hash AS bytea[]),"
    " CAST(:passport_number_sealed AS bytea[]), CAST(:email_sealed AS bytea[]),"
    " CAST(:birth_date_sealed AS bytea[]))"
    " ON CONFLICT (passport_hash) DO NOTHING"
    " RETURNING id, passport_hash, country, gender, profession"
)
_TRAINEES = text(
    "SELECT id, passport_hash, country, gender, profession FROM trainee"
    " WHERE passport_hash = ANY(CAST(:passport_hash AS bytea[]))"
)
_REMEMBER = text(
    "INSERT INTO import_trainee (job_id, trainee_id)"
    " SELECT CAST(:job_id AS uuid), unnest(CAST(:ids AS uuid[])) ON CONFLICT DO NOTHING"
)
_VIEWS = text("SELECT * FROM session_view WHERE session_id = ANY(CAST(:ids AS uuid[]))")
_FORGET_TRAINEES = text("DELETE FROM trainee WHERE id = ANY(CAST(:ids AS uuid[]))")
# Locked in order (no deadlock between chunks), and their places_version moved (as every
# locker of a session's places does: store.enrollments).
_LOCK_VIEWS = text(
    "WITH locked AS (SELECT session_id FROM session_view"
    " WHERE session_id = ANY(CAST(:ids AS uuid[])) ORDER BY session_id FOR UPDATE)"
    " UPDATE session_view v SET places_version = v.places_version + 1 FROM locked"
    " WHERE v.session_id = locked.session_id RETURNING v.*"
)
_ENROLLED = text(
    "SELECT e.session_id, e.trainee_id, e.status FROM enrollment e"
    " JOIN unnest(CAST(:session_id AS uuid[]), CAST(:trainee_id AS uuid[])) AS k(s, t)"
    " ON e.session_id = k.s AND e.trainee_id = k.t"
)
_BY_COUNTRY = text(
    "SELECT session_id, country, count(*) AS n FROM enrollment"
    " WHERE session_id = ANY(CAST(:ids AS uuid[])) AND status = ANY(CAST(:occupying AS text[]))"
    " GROUP BY session_id, country"
)
_WAITING = text(
    "SELECT session_id, count(*) AS n FROM enrollment"
    " WHERE session_id = ANY(CAST(:ids AS uuid[])) AND status = 'waitlisted' GROUP BY session_id"
)
_NEW_ENROLLMENTS = text(
    "INSERT INTO enrollment (id, session_id, trainee_id, status, waitlist_seq, country)"
    " SELECT * FROM unnest(CAST(:id AS uuid[]), CAST(:session_id AS uuid[]),"
    " CAST(:trainee_id AS uuid[]), CAST(:status AS text[]), CAST(:seq AS bigint[]),"
    " CAST(:country AS text[]))"
)
_SEQS = text("SELECT nextval('enrollment_waitlist_seq') FROM generate_series(1, :n)")
_ADD_ACCEPTED = text(
    "UPDATE session_view v SET accepted = v.accepted + d.n"
    " FROM unnest(CAST(:ids AS uuid[]), CAST(:n AS int[])) AS d(id, n)"
    " WHERE v.session_id = d.id"
)


# --- jobs ----------------------------------------------------------------------------------


async def create_job(
    db: AsyncSession,
    job_id: uuid.UUID,
    runner: uuid.UUID,
    sha256: str,
    filename: str | None,
    total: int,
) -> bool:
    """A new running job for the file; False if the file (its hash) has one already."""
    created = await db.scalar(
        pg_insert(J)
        .values(id=job_id, sha256=sha256, filename=filename, status="running")
        .values(total=total, runner=runner)
        .on_conflict_do_nothing(index_elements=["sha256"])
        .returning(J.c.id)
    )
    return created is not None


async def take_over_job(
    db: AsyncSession, sha256: str, runner: uuid.UUID, abandoned_after: timedelta
) -> Row[Any] | None:
    """Give the file's job to ``runner`` if it failed or was abandoned (``id``,
    ``processed``); None if it runs or is done."""
    abandoned = func.now() - cast(literal(abandoned_after), Interval)
    resumed = await db.execute(
        update(J)
        .where(
            J.c.sha256 == sha256,
            or_(
                J.c.status == "failed",
                and_(J.c.status == "running", J.c.progressed_at < abandoned),
            ),
        )
        .values(runner=runner, progressed_at=func.now())
        .values(status="running", error=None, finished_at=None)
        .returning(J.c.id, J.c.processed)
    )
    return resumed.first()


async def job_of_file(db: AsyncSession, sha256: str) -> uuid.UUID | None:
    """The id of the file's job."""
    found: uuid.UUID | None = await db.scalar(select(J.c.id).where(J.c.sha256 == sha256))
    return found


async def get_job(db: AsyncSession, job_id: uuid.UUID) -> RowMapping | None:
    """An import job."""
    return (await db.execute(select(J).where(J.c.id == job_id))).mappings().first()


async def job_errors(db: AsyncSession, job_id: uuid.UUID, limit: int) -> Sequence[Row[Any]]:
    """A job's first row errors, by row number."""
    errors = await db.execute(
        select(tables.import_error)
        .where(tables.import_error.c.job_id == job_id)
        .order_by(tables.import_error.c.row_number)
        .limit(limit)
    )
    return errors.all()


async def add_errors(
    db: AsyncSession, job_id: uuid.UUID, errors: Sequence[tuple[int, str]]
) -> None:
    """Record rows refused (row number, reason)."""
    if errors:
        await db.execute(
            insert(tables.import_error),
            [{"job_id": job_id, "row_number": row, "reason": reason} for row, reason in errors],
        )


async def advance_job(
    db: AsyncSession,
    job_id: uuid.UUID,
    runner: uuid.UUID,
    processed: int,
    succeeded: int,
    failed: int,
) -> bool:
    """Move the job's counters, only while ``runner`` holds it; whether it does."""
    held = await db.scalar(
        update(J)
        .where(J.c.id == job_id, J.c.runner == runner)
        .values(
            processed=J.c.processed + processed,
            succeeded=J.c.succeeded + succeeded,
            failed=J.c.failed + failed,
            progressed_at=func.now(),
        )
        .returning(J.c.id)
    )
    return held is not None


async def finish_job(
    db: AsyncSession, job_id: uuid.UUID, runner: uuid.UUID, status: str, error: str | None
) -> None:
    """End the job (if ``runner`` still holds it)."""
    await db.execute(
        update(J)
        .where(J.c.id == job_id, J.c.runner == runner)
        .values(status=status, error=error, finished_at=func.now())
    )


# --- a chunk's people ----------------------------------------------------------------------


async def new_trainees(db: AsyncSession, columns: dict[str, list[Any]]) -> Sequence[Row[Any]]:
    """Insert the people not registered yet (``TRAINEE_COLUMNS``' arrays); those inserted
    (id, passport_hash, country, gender, profession)."""
    return (await db.execute(_NEW_TRAINEES, columns)).all()


async def trainees_by_hash(db: AsyncSession, hashes: Sequence[bytes]) -> Sequence[Row[Any]]:
    """Registered people by passport hash (id, passport_hash, country, gender, profession)."""
    return (await db.execute(_TRAINEES, {"passport_hash": list(hashes)})).all()


async def forget_trainees(db: AsyncSession, ids: Sequence[uuid.UUID]) -> None:
    """Delete people registered in this transaction."""
    await db.execute(_FORGET_TRAINEES, {"ids": list(ids)})


async def remember(db: AsyncSession, job_id: uuid.UUID, trainee_ids: Sequence[uuid.UUID]) -> None:
    """Record that the job's file holds these trainees."""
    await db.execute(_REMEMBER, {"job_id": job_id, "ids": list(trainee_ids)})


# --- a chunk's sessions and enrollments ----------------------------------------------------


async def session_views(db: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, RowMapping]:
    """The sessions' view rows, unlocked, by id."""
    found = await db.execute(_VIEWS, {"ids": list(ids)})
    return {r["session_id"]: r for r in found.mappings()}


async def lock_views(db: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, RowMapping]:
    """The sessions' view rows, locked in id order, by id."""
    found = await db.execute(_LOCK_VIEWS, {"ids": list(ids)})
    return {r["session_id"]: r for r in found.mappings()}


async def enrolled(
    db: AsyncSession, pairs: Sequence[tuple[uuid.UUID, uuid.UUID]]
) -> dict[tuple[uuid.UUID, uuid.UUID], str]:
    """The status of each (session, trainee) pair's enrollment, for those that have one."""
    found = await db.execute(
        _ENROLLED, {"session_id": [p[0] for p in pairs], "trainee_id": [p[1] for p in pairs]}
    )
    return {(r.session_id, r.trainee_id): r.status for r in found}


async def occupying_by_country(db: AsyncSession, ids: Sequence[uuid.UUID]) -> Sequence[Row[Any]]:
    """Places taken per session and country (session_id, country, n)."""
    found = await db.execute(_BY_COUNTRY, {"ids": list(ids), "occupying": OCCUPYING_VALUES})
    return found.all()


async def waitlisted(db: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Each session's waitlist length (sessions without one left out)."""
    found = await db.execute(_WAITING, {"ids": list(ids)})
    return {r.session_id: int(r.n) for r in found}


async def waitlist_seqs(db: AsyncSession, n: int) -> list[int]:
    """``n`` numbers in waitlist order."""
    return list((await db.execute(_SEQS, {"n": n})).scalars())


async def add_enrollments(db: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert new enrollments (id, session_id, trainee_id, status, waitlist_seq, country)."""
    await db.execute(
        _NEW_ENROLLMENTS,
        {
            "id": [row["id"] for row in rows],
            "session_id": [row["session_id"] for row in rows],
            "trainee_id": [row["trainee_id"] for row in rows],
            "status": [row["status"].value for row in rows],
            "seq": [row.get("waitlist_seq") for row in rows],
            "country": [row["country"] for row in rows],
        },
    )


async def add_accepted(db: AsyncSession, taken: dict[uuid.UUID, int]) -> None:
    """Move the sessions' counts of taken places."""
    if taken:
        await db.execute(_ADD_ACCEPTED, {"ids": list(taken), "n": list(taken.values())})
