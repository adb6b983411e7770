"""Reporting queries over the projections."""

from __future__ import annotations

import uuid

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Integer, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tpp_contracts.vocab import EnrollmentStatus

from tpp_reporting import tables

_ADMITTED = [
    EnrollmentStatus.ACCEPTED.value,
    EnrollmentStatus.ATTENDED.value,
    EnrollmentStatus.COMPLETED.value,
    EnrollmentStatus.NO_SHOW.value,
]


class SessionReport(BaseModel):
    """Figures of one session."""

    session_id: uuid.UUID
    year: int | None
    status: str | None
    capacity: int | None
    enrolled: int
    accepted: int
    waitlisted: int
    completed: int


class YearReport(BaseModel):
    """Figures of one program year."""

    year: int
    sessions: int
    sessions_published: int
    sessions_completed: int
    sessions_cancelled: int
    sessions_overseas: int
    trainees_enrolled: int
    trainees_accepted: int
    trainees_completed: int
    countries_reached: int


def _count_status(*statuses: str) -> ColumnElement[int]:
    fact = tables.enrollment_fact
    return func.coalesce(func.sum(fact.c.status.in_(statuses).cast(Integer)), 0)


class ReportingService:
    """Reads the reporting projections."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def session_report(self, session_id: uuid.UUID) -> SessionReport:
        """One session's figures (zero until its events arrive)."""
        fact, sess = tables.enrollment_fact, tables.session_fact
        async with self._sessions() as db:
            counts = (
                await db.execute(
                    select(
                        func.count().label("enrolled"),
                        _count_status(*_ADMITTED).label("accepted"),
                        _count_status(EnrollmentStatus.WAITLISTED.value).label("waitlisted"),
                        _count_status(EnrollmentStatus.COMPLETED.value).label("completed"),
                    ).where(fact.c.session_id == session_id)
                )
            ).one()
            info = (
                await db.execute(
                    select(sess.c.year, sess.c.status, sess.c.capacity).where(
                        sess.c.session_id == session_id
                    )
                )
            ).first()
        return SessionReport(
            session_id=session_id,
            year=info.year if info else None,
            status=info.status if info else None,
            capacity=info.capacity if info else None,
            enrolled=counts.enrolled,
            accepted=counts.accepted,
            waitlisted=counts.waitlisted,
            completed=counts.completed,
        )

    async def year_report(self, year: int) -> YearReport:
        """A program year's figures."""
        fact, sess = tables.enrollment_fact, tables.session_fact
        async with self._sessions() as db:
            s = (
                await db.execute(
                    select(
                        func.count().label("sessions"),
                        func.count().filter(sess.c.status != "draft").label("published"),
                        func.count().filter(sess.c.status == "completed").label("completed"),
                        func.count().filter(sess.c.status == "cancelled").label("cancelled"),
                        func.count().filter(sess.c.overseas).label("overseas"),
                    ).where(sess.c.year == year)
                )
            ).one()
            e = (
                await db.execute(
                    select(
                        func.count(distinct(fact.c.trainee_id)).label("enrolled"),
                        func.count(distinct(fact.c.trainee_id))
                        .filter(fact.c.status.in_(_ADMITTED))
                        .label("accepted"),
                        func.count(distinct(fact.c.trainee_id))
                        .filter(fact.c.status == EnrollmentStatus.COMPLETED.value)
                        .label("completed"),
                        func.count(distinct(fact.c.country))
                        .filter(fact.c.status.in_(_ADMITTED))
                        .label("countries"),
                    )
                    .select_from(fact.join(sess, sess.c.session_id == fact.c.session_id))
                    .where(sess.c.year == year)
                )
            ).one()
        return YearReport(
            year=year,
            sessions=s.sessions,
            sessions_published=s.published,
            sessions_completed=s.completed,
            sessions_cancelled=s.cancelled,
            sessions_overseas=s.overseas,
            trainees_enrolled=e.enrolled,
            trainees_accepted=e.accepted,
            trainees_completed=e.completed,
            countries_reached=e.countries,
        )
