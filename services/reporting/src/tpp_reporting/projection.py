"""Reporting projections: how each event changes the facts the reports read."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from tpp_contracts import enrollment as ev
from tpp_contracts import registry as rg
from tpp_contracts.envelope import Envelope, Event
from tpp_contracts.vocab import EnrollmentStatus

from tpp_reporting import tables


async def on_session_details(db: AsyncSession, event: Any, _: Envelope) -> None:
    """A session's full details (created, edited, published)."""
    fact = tables.session_fact
    values = {
        "organizer_id": event.organizer_id,
        "year": event.year,
        "field": event.field.value,
        "venue_country": event.venue_country,
        "overseas": event.overseas,
        "capacity": event.capacity,
        "status": event.status.value,
        "version": event.version,
    }
    await db.execute(
        insert(fact)
        .values(session_id=event.session_id, **values)
        .on_conflict_do_update(
            index_elements=[fact.c.session_id], set_=values, where=fact.c.version < event.version
        )
    )


async def on_session_change(db: AsyncSession, event: Any, _: Envelope) -> None:
    """A partial session change: status, and capacity or year where given."""
    fact = tables.session_fact
    values: dict[str, Any] = {"status": event.status.value, "version": event.version}
    if isinstance(event, rg.SessionCapacityChangedV1):
        values["capacity"] = event.capacity
    if isinstance(event, rg.SessionRescheduledV1):
        values["year"] = event.year
    if isinstance(event, rg.SessionVenueChangedV1):
        values |= {"venue_country": event.venue_country, "overseas": event.overseas}
    await db.execute(
        update(fact)
        .where(fact.c.session_id == event.session_id, fact.c.version < event.version)
        .values(**values)
    )


_STATUS_OF: dict[type[Event], EnrollmentStatus] = {
    ev.EnrollmentSubmittedV1: EnrollmentStatus.SUBMITTED,
    ev.EnrollmentAcceptedV1: EnrollmentStatus.ACCEPTED,
    ev.EnrollmentWaitlistedV1: EnrollmentStatus.WAITLISTED,
    ev.EnrollmentRejectedV1: EnrollmentStatus.REJECTED,
    ev.EnrollmentWithdrawnV1: EnrollmentStatus.WITHDRAWN,
    ev.EnrollmentCancelledV1: EnrollmentStatus.CANCELLED,
    ev.TraineeAttendedV1: EnrollmentStatus.ATTENDED,
    ev.TraineeNoShowV1: EnrollmentStatus.NO_SHOW,
    ev.EnrollmentCompletedV1: EnrollmentStatus.COMPLETED,
}


async def on_enrollment_status(db: AsyncSession, event: Any, _: Envelope) -> None:
    """An enrollment changed status (events of one session arrive in order)."""
    fact = tables.enrollment_fact
    status = _STATUS_OF[type(event)].value
    await db.execute(
        insert(fact)
        .values(
            enrollment_id=event.enrollment_id,
            session_id=event.session_id,
            trainee_id=event.trainee_id,
            country=event.country,
            gender=event.gender.value,
            profession=event.profession.value,
            status=status,
        )
        .on_conflict_do_update(
            index_elements=[fact.c.enrollment_id],
            set_={"status": status, "updated_at": func.now()},
        )
    )


HANDLERS: dict[type[Event], Any] = {
    rg.SessionCreatedV1: on_session_details,
    rg.SessionDraftUpdatedV1: on_session_details,
    rg.SessionPublishedV1: on_session_details,
    rg.SessionRescheduledV1: on_session_change,
    rg.SessionVenueChangedV1: on_session_change,
    rg.SessionCapacityChangedV1: on_session_change,
    rg.SessionEnrollmentClosedV1: on_session_change,
    rg.SessionStartedV1: on_session_change,
    rg.SessionCompletedV1: on_session_change,
    rg.SessionCancelledV1: on_session_change,
} | dict.fromkeys(_STATUS_OF, on_enrollment_status)
