"""Read-only queries: session enrollments, trainee history and search, follow-ups due."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tpp_contracts.vocab import EnrollmentStatus
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
from tpp_enrollment.service.enrollments import to_enrollment
from tpp_enrollment.store import enrollments as store
from tpp_enrollment.store import tables

E = tables.enrollment
T = tables.trainee
F = tables.follow_up


class QueryService:
    """What operators look up; nothing here writes."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], personal: PersonalData) -> None:
        self._sessions = sessions
        self._personal = personal

    async def get_session_view(self, session_id: uuid.UUID) -> SessionView:
        """This service's view of a session."""
        async with self._sessions() as db:
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
        # The others first by arrival, then the waitlist in its order.
        query = query.order_by(E.c.waitlist_seq.nulls_first(), E.c.created_at, E.c.id)
        async with self._sessions() as db:
            rows = await db.execute(query.limit(limit).offset(offset))
            return [Enrollment.model_validate(dict(r)) for r in rows.mappings()]

    async def get_enrollment(self, enrollment_id: uuid.UUID) -> Enrollment:
        """One enrollment."""
        async with self._sessions() as db:
            row = await store.get_enrollment(db, enrollment_id)
            if row is None:
                raise NotFoundError(f"no enrollment {enrollment_id}")
            return await to_enrollment(db, row)

    async def get_trainee(self, trainee_id: uuid.UUID) -> Trainee:
        """One trainee."""
        async with self._sessions() as db:
            row = await store.get_trainee(db, trainee_id)
        if row is None:
            raise NotFoundError(f"no trainee {trainee_id}")
        return Trainee.model_validate(self._personal.open_trainee(dict(row)))

    async def trainee_history(self, trainee_id: uuid.UUID) -> list[Enrollment]:
        """Every enrollment of a trainee, oldest first."""
        await self.get_trainee(trainee_id)
        async with self._sessions() as db:
            rows = await db.execute(
                select(E).where(E.c.trainee_id == trainee_id).order_by(E.c.created_at)
            )
            return [Enrollment.model_validate(dict(r)) for r in rows.mappings()]

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
        query = select(T).where(T.c.erased_at.is_(None))
        if name:
            query = query.where(T.c.full_name.icontains(name, autoescape=True))
        if country:
            query = query.where(T.c.country == country.upper())
        if organization:
            query = query.where(T.c.organization.icontains(organization, autoescape=True))
        async with self._sessions() as db:
            rows = await db.execute(
                query.order_by(T.c.full_name, T.c.id).limit(limit).offset(offset)
            )
            found = [dict(r) for r in rows.mappings()]
        items = [Trainee.model_validate(self._personal.open_trainee(r)) for r in found]
        return TraineePage(items=items, limit=limit, offset=offset)

    async def follow_ups(self, enrollment_id: uuid.UUID) -> list[FollowUp]:
        """An enrollment's follow-ups, oldest first."""
        await self.get_enrollment(enrollment_id)
        async with self._sessions() as db:
            rows = await db.execute(
                select(F).where(F.c.enrollment_id == enrollment_id).order_by(F.c.followed_up_on)
            )
            return [FollowUp.model_validate(dict(r)) for r in rows.mappings()]

    async def follow_ups_due(self, as_of: date, limit: int) -> list[FollowUpDue]:
        """Completed enrollments with a follow-up milestone (3, 6, 12 months) due on ``as_of``
        that no follow-up has met (``domain.follow_up_due``), oldest completion first."""
        dates = (
            select(F.c.enrollment_id, func.array_agg(F.c.followed_up_on).label("days"))
            .group_by(F.c.enrollment_id)
            .subquery()
        )
        # A first due date comes at least 89 days after completion (January 31 to April 30),
        # and the last window closes within 16 months: the exact test is the domain's.
        query = (
            select(E.c.id, E.c.session_id, E.c.trainee_id, E.c.completed_on, dates.c.days)
            .select_from(E.outerjoin(dates, dates.c.enrollment_id == E.c.id))
            .where(
                and_(
                    E.c.status == EnrollmentStatus.COMPLETED.value,
                    E.c.completed_on <= as_of - timedelta(days=89),
                    E.c.completed_on > add_months(as_of, -16),
                )
            )
            .order_by(E.c.completed_on, E.c.id)
        )
        due: list[FollowUpDue] = []
        async with self._sessions() as db:
            for row in (await db.execute(query)).mappings():
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
