"""Whose data is it: the organizer behind a session, an enrollment or a trainee.

Organizers act on their own sessions only; the session view knows each session's organizer
(from the registry's session events). Operators never come here: no lookup on their path.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tpp_plumbing.auth import Principal, require_owner
from tpp_plumbing.problems import NotFoundError

from tpp_enrollment import tables

V = tables.session_view
E = tables.enrollment


class AccessService:
    """Answers "may this organizer see or change that?" from the session view."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def check_session(self, who: Principal, session_id: uuid.UUID) -> None:
        """403 unless the session is the organizer's (404 if the view does not know it)."""
        if who.is_operator:
            return
        async with self._sessions() as db:
            row = (
                await db.execute(select(V.c.organizer_id).where(V.c.session_id == session_id))
            ).first()
        if row is None:
            raise NotFoundError(f"no session {session_id} in the enrollment service's view")
        require_owner(who, row.organizer_id, "session")

    async def check_enrollment(self, who: Principal, enrollment_id: uuid.UUID) -> None:
        """403 unless the enrollment is in one of the organizer's sessions (404 if unknown)."""
        if who.is_operator:
            return
        query = (
            select(V.c.organizer_id)
            .select_from(E.outerjoin(V, V.c.session_id == E.c.session_id))
            .where(E.c.id == enrollment_id)
        )
        async with self._sessions() as db:
            row = (await db.execute(query)).first()
        if row is None:
            raise NotFoundError(f"no enrollment {enrollment_id}")
        require_owner(who, row.organizer_id, "enrollment")

    async def check_trainee(self, who: Principal, trainee_id: uuid.UUID) -> None:
        """403 unless the trainee is enrolled in at least one of the organizer's sessions."""
        if who.is_operator:
            return
        query = select(
            exists().where(
                E.c.trainee_id == trainee_id,
                E.c.session_id == V.c.session_id,
                V.c.organizer_id == who.organizer_id,
            )
        )
        async with self._sessions() as db:
            found = await db.scalar(query)
        if not found:
            require_owner(who, None, "trainee")

    async def own_sessions(
        self, who: Principal, session_ids: Iterable[uuid.UUID]
    ) -> set[uuid.UUID]:
        """Which of these sessions are the organizer's."""
        ids = list(set(session_ids))
        if not ids:
            return set()
        query = select(V.c.session_id).where(
            V.c.session_id.in_(ids), V.c.organizer_id == who.organizer_id
        )
        async with self._sessions() as db:
            return set((await db.scalars(query)).all())
