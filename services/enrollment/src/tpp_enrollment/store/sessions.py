"""The session view (the registry's sessions as this service knows them): the projection's
writes and whose each session is; plain queries on the caller's connection; never commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tpp_enrollment.store import tables

V = tables.session_view
E = tables.enrollment


async def apply_details(db: AsyncSession, session_id: uuid.UUID, values: dict[str, Any]) -> bool:
    """Insert the session's row, or refresh it from ``values`` if their ``version`` is newer
    than the view's; whether it was written."""
    applied = await db.scalar(
        insert(V)
        .values(session_id=session_id, **values)
        .on_conflict_do_update(
            index_elements=[V.c.session_id],
            # A new capacity, status or limit: enrollments decided before are decided again.
            set_=values | {"updated_at": func.now(), "places_version": V.c.places_version + 1},
            where=V.c.version < values["version"],
        )
        .returning(V.c.session_id)
    )
    return applied is not None


async def apply_change(
    db: AsyncSession, session_id: uuid.UUID, version: int, fields: dict[str, Any]
) -> bool:
    """Set ``fields`` on the session's row if ``version`` is newer than the view's; whether
    it was written."""
    applied = await db.scalar(
        update(V)
        .where(V.c.session_id == session_id, V.c.version < version)
        .values(
            **fields,
            version=version,
            updated_at=func.now(),
            places_version=V.c.places_version + 1,
        )
        .returning(V.c.session_id)
    )
    return applied is not None


async def organizer_of_session(db: AsyncSession, session_id: uuid.UUID) -> Row[Any] | None:
    """The session's ``organizer_id``; None when the view does not know the session."""
    found = await db.execute(select(V.c.organizer_id).where(V.c.session_id == session_id))
    return found.first()


async def organizer_of_enrollment(db: AsyncSession, enrollment_id: uuid.UUID) -> Row[Any] | None:
    """The ``organizer_id`` of the enrollment's session (None in it when the view does not
    know the session); None when there is no such enrollment."""
    found = await db.execute(
        select(V.c.organizer_id)
        .select_from(E.outerjoin(V, V.c.session_id == E.c.session_id))
        .where(E.c.id == enrollment_id)
    )
    return found.first()


async def organizers_sessions(
    db: AsyncSession, organizer_id: uuid.UUID | None, session_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of these sessions are the organizer's."""
    query = select(V.c.session_id).where(
        V.c.session_id.in_(session_ids), V.c.organizer_id == organizer_id
    )
    found = await db.scalars(query)
    return set(found.all())
