"""The session view: the registry's session events, projected, and the places they move."""

from __future__ import annotations

from typing import Any

from tpp_contracts.enrollment import EnrollmentCancelledV1
from tpp_contracts.envelope import Envelope, Event
from tpp_contracts.registry import (
    SessionCancelledV1,
    SessionCapacityChangedV1,
    SessionCompletedV1,
    SessionCreatedV1,
    SessionDraftUpdatedV1,
    SessionEnrollmentClosedV1,
    SessionPublishedV1,
    SessionRescheduledV1,
    SessionStartedV1,
    SessionVenueChangedV1,
)
from tpp_contracts.vocab import EnrollmentStatus, SessionStatus
from tpp_plumbing.db.uow import UnitsOfWork
from tpp_plumbing.messaging.consumer import Handler

from tpp_enrollment.domain import CANCELLABLE, OCCUPYING
from tpp_enrollment.events import enrollment_event
from tpp_enrollment.service.places import promote
from tpp_enrollment.store import Db
from tpp_enrollment.store import enrollments as store
from tpp_enrollment.store import sessions as view_store

SessionDetailsEvent = SessionCreatedV1 | SessionDraftUpdatedV1 | SessionPublishedV1


class SessionProjector:
    """Applies session events inside the consumer's transaction (it writes outbox rows too).

    Older versions than the view's are ignored, so replays and reordering change nothing.
    """

    def __init__(self, units: UnitsOfWork) -> None:
        self._uow = units

    def handlers(self) -> dict[type[Event], Handler]:
        """The consumer's handler table."""
        change = self.on_session_change
        return {
            SessionCreatedV1: self.on_session_details,
            SessionDraftUpdatedV1: self.on_session_details,
            SessionPublishedV1: self.on_session_details,
            SessionRescheduledV1: change,
            SessionVenueChangedV1: change,
            SessionCapacityChangedV1: change,
            SessionEnrollmentClosedV1: change,
            SessionStartedV1: change,
            SessionCompletedV1: change,
            SessionCancelledV1: change,
        }

    async def on_session_details(
        self, db: Db, event: SessionDetailsEvent, envelope: Envelope
    ) -> None:
        """A session's full details: insert or refresh the view; room may admit waiters."""
        values = {
            "status": event.status.value,
            "year": event.year,
            "start_date": event.start_date,
            "end_date": event.end_date,
            "capacity": event.capacity,
            "review_required": event.review_required,
            "country_limit": event.country_limit,
            "venue_city": event.venue_city,
            "venue_country": event.venue_country,
            "version": event.version,
            "organizer_id": event.organizer_id,
        }
        if await view_store.apply_details(db, event.session_id, values):
            await self._admit(db, event, envelope)

    async def on_session_change(self, db: Db, event: Any, envelope: Envelope) -> None:
        """A partial change (dates, venue, capacity, status), applied if newer than the view."""
        fields: dict[str, Any] = {"status": SessionStatus(event.status).value}
        if isinstance(event, SessionRescheduledV1):
            fields |= {"start_date": event.start_date, "end_date": event.end_date}
            fields["year"] = event.year
        if isinstance(event, SessionVenueChangedV1):
            fields |= {"venue_city": event.venue_city, "venue_country": event.venue_country}
        if isinstance(event, SessionCapacityChangedV1):
            fields["capacity"] = event.capacity
        if not await view_store.apply_change(db, event.session_id, event.version, fields):
            return
        if isinstance(event, SessionCancelledV1):
            await self._cancel_all(db, event, envelope)
        elif isinstance(event, SessionCapacityChangedV1):
            await self._admit(db, event, envelope)

    async def _admit(self, db: Db, event: Any, envelope: Envelope) -> None:
        # A raised capacity (or a published session with waiters) admits from the waitlist.
        async with self._uow.joining(db) as uow:
            await promote(uow, event.session_id, cause=envelope)

    async def _cancel_all(self, db: Db, event: SessionCancelledV1, envelope: Envelope) -> None:
        async with self._uow.joining(db) as uow:
            rows = await store.session_enrollments(
                uow.db, event.session_id, list(CANCELLABLE), lock=True
            )
            if not rows:
                return
            ids = [row["id"] for row in rows]
            await store.set_status(
                uow.db, ids, EnrollmentStatus.CANCELLED, reason="session_cancelled"
            )
            freed = sum(1 for row in rows if EnrollmentStatus(row["status"]) in OCCUPYING)
            await store.add_accepted(uow.db, event.session_id, -freed)
            uow.emit(
                *(
                    enrollment_event(
                        EnrollmentCancelledV1,
                        row,
                        previous_status=row["status"],
                        reason="session_cancelled",
                    )
                    for row in rows
                ),
                cause=envelope,
            )
