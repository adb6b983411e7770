"""Whose data is it: the organizer behind a session, an enrollment or a trainee.

Organizers act on their own sessions only; the session view knows each session's organizer
(from the registry's session events). A trainee is an organizer's when enrolled in one of its
sessions, or linked to it in ``trainee_organizer`` (registered by it, matched by it with the
full personal record, or shared with it by an operator); the organizer sees the trainee's
personal data only where that link says so. Operators never come here: no lookup on their path.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Literal

from tpp_plumbing.db.uow import UnitsOfWork
from tpp_plumbing.web.auth import Principal, require_owner
from tpp_plumbing.web.problems import NotFoundError

from tpp_enrollment.store import Db, Record
from tpp_enrollment.store import sessions as store
from tpp_enrollment.store import trainees as trainee_store


class AccessService:
    """Answers "may this organizer see or change that?" from the session view."""

    def __init__(self, units: UnitsOfWork) -> None:
        self._uow = units

    async def check_session(self, who: Principal, session_id: uuid.UUID) -> None:
        """403 unless the session is the organizer's (404 if the view does not know it)."""
        if not who.is_operator:
            await self._check(who, "session", store.organizer_of_session, session_id)

    async def check_enrollment(self, who: Principal, enrollment_id: uuid.UUID) -> None:
        """403 unless the enrollment is in one of the organizer's sessions (404 if unknown)."""
        if not who.is_operator:
            await self._check(who, "enrollment", store.organizer_of_enrollment, enrollment_id)

    async def _check(
        self,
        who: Principal,
        what: Literal["session", "enrollment"],
        organizer_of: Callable[[Db, uuid.UUID], Awaitable[Record | None]],
        id_: uuid.UUID,
    ) -> None:
        async with self._uow.read() as db:
            row = await organizer_of(db, id_)
        if row is None:
            where = " in the enrollment service's view" if what == "session" else ""
            raise NotFoundError(f"no {what} {id_}{where}")
        require_owner(who, row.organizer_id, what)

    async def check_trainee(self, who: Principal, trainee_id: uuid.UUID) -> None:
        """403 unless the trainee is the organizer's (enrolled in one of its sessions, or
        linked to it); an unknown trainee too, so that a stranger learns nothing."""
        if who.is_operator:
            return
        if await self.trainee_access(who, trainee_id) is None:
            require_owner(who, None, "trainee")

    async def sees_personal_data(self, who: Principal, trainee_id: uuid.UUID) -> bool:
        """Whether the caller may see the trainee's personal data: an operator, or an
        organizer that registered the trainee or was shared it by an operator."""
        return who.is_operator or bool(await self.trainee_access(who, trainee_id))

    async def trainee_access(self, who: Principal, trainee_id: uuid.UUID) -> bool | None:
        """For an organizer: None when the trainee is not theirs, else whether they may see
        its personal data."""
        async with self._uow.read() as db:
            linked, in_own_session = await trainee_store.organizer_access(
                db, trainee_id, who.organizer_id
            )
        if linked is None:
            return False if in_own_session else None
        return bool(linked)

    async def own_sessions(
        self, who: Principal, session_ids: Iterable[uuid.UUID]
    ) -> set[uuid.UUID]:
        """Which of these sessions are the organizer's."""
        ids = list(set(session_ids))
        if not ids:
            return set()
        async with self._uow.read() as db:
            return await store.organizers_sessions(db, who.organizer_id, ids)
