"""Read-only queries: session enrollments, trainee history and search, follow-ups due."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from tpp_contracts.vocab import EnrollmentStatus
from tpp_plumbing.db.uow import UnitsOfWork
from tpp_plumbing.web.problems import NotFoundError

from tpp_enrollment.api.models import (
    Enrollment,
    FollowUp,
    FollowUpDue,
    SessionView,
    Trainee,
    TraineePage,
)
from tpp_enrollment.domain import add_months, follow_up_due
from tpp_enrollment.personal import PersonalData
from tpp_enrollment.service.enrollments import read_enrollment
from tpp_enrollment.store import enrollments as store
from tpp_enrollment.store import feedback as feedback_store
from tpp_enrollment.store import trainees as trainee_store


class QueryService:
    """What operators look up; nothing here writes."""

    def __init__(self, units: UnitsOfWork, personal: PersonalData) -> None:
        self._uow = units
        self._personal = personal

    async def get_session_view(self, session_id: uuid.UUID) -> SessionView:
        """This service's view of a session."""
        async with self._uow.read() as db:
            row = await store.get_session(db, session_id)
        if row is None:
            raise NotFoundError(f"no session {session_id} in the enrollment service's view")
        return SessionView.model_validate(dict(row))

    async def session_enrollments(
        self,
        session_id: uuid.UUID,
        status: EnrollmentStatus | None,
        limit: int,
        offset: int,
    ) -> list[Enrollment]:
        """A session's enrollments, by status; the waitlist in order with positions."""
        async with self._uow.read() as db:
            rows = await store.session_page(db, session_id, status, limit, offset)
        return [Enrollment.model_validate(r) for r in rows]

    async def get_enrollment(self, enrollment_id: uuid.UUID) -> Enrollment:
        """One enrollment."""
        return await read_enrollment(self._uow, enrollment_id)

    async def get_trainee(self, trainee_id: uuid.UUID) -> Trainee:
        """One trainee."""
        async with self._uow.read() as db:
            row = await store.get_trainee(db, trainee_id)
        if row is None:
            raise NotFoundError(f"no trainee {trainee_id}")
        return Trainee.model_validate(self._personal.open_trainee(dict(row)))

    async def trainee_history(self, trainee_id: uuid.UUID) -> list[Enrollment]:
        """Every enrollment of a trainee, oldest first."""
        await self.get_trainee(trainee_id)
        async with self._uow.read() as db:
            rows = await store.trainee_enrollments(db, trainee_id)
        return [Enrollment.model_validate(r) for r in rows]

    async def search_trainees(
        self,
        name: str | None,
        country: str | None,
        organization: str | None,
        limit: int,
        offset: int,
    ) -> TraineePage:
        """Trainees whose name / organization contain the words, in a country; paginated.

        Erased trainees are not people any more: never found.
        """
        async with self._uow.read() as db:
            found = await trainee_store.search(db, name, country, organization, limit, offset)
        items = [Trainee.model_validate(self._personal.open_trainee(r)) for r in found]
        return TraineePage(items=items, limit=limit, offset=offset)

    async def follow_ups(self, enrollment_id: uuid.UUID) -> list[FollowUp]:
        """An enrollment's follow-ups, oldest first."""
        await self.get_enrollment(enrollment_id)
        async with self._uow.read() as db:
            rows = await feedback_store.follow_ups(db, enrollment_id)
        return [FollowUp.model_validate(r) for r in rows]

    async def follow_ups_due(self, as_of: date, limit: int) -> list[FollowUpDue]:
        """Completed enrollments with a follow-up milestone (3, 6, 12 months) due on ``as_of``
        that no follow-up has met (``domain.follow_up_due``), oldest completion first."""
        # A first due date comes at least 89 days after completion (January 31 to April 30),
        # and the last window closes within 16 months: the exact test is the domain's.
        async with self._uow.read() as db:
            completed = await feedback_store.completions(
                db, after=add_months(as_of, -16), until=as_of - timedelta(days=89)
            )
        due: list[FollowUpDue] = []
        for row in completed:
            recorded = row["days"] or []
            milestone = follow_up_due(row["completed_on"], recorded, as_of)
            if milestone is None:
                continue
            due.append(
                FollowUpDue(
                    enrollment_id=row["id"],
                    session_id=row["session_id"],
                    trainee_id=row["trainee_id"],
                    completed_on=row["completed_on"],
                    months=milestone.months,
                    due_on=milestone.due_on,
                    closes_on=milestone.closes_on,
                    recorded=len(recorded),
                )
            )
            if len(due) >= limit:
                break
        return due
