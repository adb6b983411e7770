"""Events of the registry context: organizers, annual plans and training sessions."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Literal, Self, TypeAlias

from pydantic import Field, model_validator

from tpp_contracts.envelope import Event
from tpp_contracts.topics import ORGANIZERS, PLANS, SESSIONS
from tpp_contracts.vocab import (
    CountryCode,
    CurrencyCode,
    LanguageTag,
    OrganizerKind,
    SessionStatus,
    TechnicalField,
)

# --- organizers ------------------------------------------------------------------------------


class _OrganizerState(Event):
    """The full state of an organizer, as carried by its created and updated events."""

    topic = ORGANIZERS

    organizer_id: uuid.UUID
    name: str = Field(min_length=1, max_length=300, description="The institution's name.")
    kind: OrganizerKind
    province: str | None = Field(description="Province or state, when the country has them.")
    country: CountryCode
    contact: str | None = Field(
        description="The institution's contact address (an office, not a person)."
    )


class OrganizerCreatedV1(_OrganizerState):
    """An institution was registered as a session organizer."""

    type = "tpp.registry.organizer.created.v1"


class OrganizerUpdatedV1(_OrganizerState):
    """An organizer's details changed; the event carries its full new state."""

    type = "tpp.registry.organizer.updated.v1"


OrganizerEvent: TypeAlias = OrganizerCreatedV1 | OrganizerUpdatedV1

# --- annual plans ----------------------------------------------------------------------------


class AnnualPlanSetV1(Event):
    """The annual plan of a year was set or revised; the event carries the whole plan."""

    type = "tpp.registry.plan.set.v1"
    topic = PLANS

    year: int = Field(ge=2000, le=2100)
    planned_sessions: int = Field(ge=0)
    budget: Decimal | None = Field(ge=0, description="Planned budget, in ``currency``.")
    currency: CurrencyCode | None = Field(description="ISO 4217 code; set when budget is.")
    revision: int = Field(ge=1, description="1 for the first plan of the year, then +1.")
    note: str | None = Field(max_length=2000)
    planned_overseas_sessions: int | None = Field(
        default=None, ge=0, description="How many of the planned sessions are held abroad."
    )

    @model_validator(mode="after")
    def _budget_has_currency(self) -> Self:
        if (self.budget is None) != (self.currency is None):
            raise ValueError("budget and currency are given together or not at all")
        return self


PlanEvent: TypeAlias = AnnualPlanSetV1

# --- sessions --------------------------------------------------------------------------------


class _SessionEvent(Event):
    """Fields every session event carries: the session and its version after the change."""

    topic = SESSIONS

    session_id: uuid.UUID
    version: int = Field(ge=1, description="The session's optimistic version after the change.")


class SessionDetails(_SessionEvent):
    """The full details of a training session, shared by the events that carry all of them."""

    organizer_id: uuid.UUID
    title: str = Field(min_length=1, max_length=300)
    field: TechnicalField
    year: int = Field(ge=2000, le=2100, description="The program year the session counts in.")
    start_date: date
    end_date: date
    venue_city: str = Field(min_length=1, max_length=200)
    venue_country: CountryCode
    overseas: bool = Field(description="Held outside the sponsoring country.")
    capacity: int = Field(ge=1, description="Places available to trainees.")
    languages: list[LanguageTag] = Field(min_length=1, description="BCP 47 tags, e.g. 'en'.")
    description: str | None = Field(max_length=10_000)
    review_required: bool = Field(
        description="Enrollments wait for review; otherwise they are decided on submission."
    )
    country_limit: int | None = Field(
        ge=1, description="At most this many places per trainee country; None for no limit."
    )

    @model_validator(mode="after")
    def _dates_in_order(self) -> Self:
        if self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        return self


class SessionCreatedV1(SessionDetails):
    """A session was created as a draft, not yet visible in the catalogue."""

    type = "tpp.registry.session.created.v1"

    status: Literal[SessionStatus.DRAFT] = SessionStatus.DRAFT


class SessionDraftUpdatedV1(SessionDetails):
    """A draft session's details changed; the event carries all of them."""

    type = "tpp.registry.session.draft_updated.v1"

    status: Literal[SessionStatus.DRAFT] = SessionStatus.DRAFT


class SessionPublishedV1(SessionDetails):
    """A session was published: it is in the catalogue and open for enrollment."""

    type = "tpp.registry.session.published.v1"

    status: Literal[SessionStatus.PUBLISHED] = SessionStatus.PUBLISHED


class SessionRescheduledV1(_SessionEvent):
    """A session's dates (and possibly its program year) changed after publication."""

    type = "tpp.registry.session.rescheduled.v1"

    start_date: date
    end_date: date
    year: int = Field(ge=2000, le=2100)
    status: SessionStatus

    @model_validator(mode="after")
    def _dates_in_order(self) -> Self:
        if self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        return self


class SessionVenueChangedV1(_SessionEvent):
    """A session's venue changed after publication."""

    type = "tpp.registry.session.venue_changed.v1"

    venue_city: str = Field(min_length=1, max_length=200)
    venue_country: CountryCode
    overseas: bool
    status: SessionStatus


class SessionCapacityChangedV1(_SessionEvent):
    """A session's capacity changed after publication (a raise admits from the waitlist)."""

    type = "tpp.registry.session.capacity_changed.v1"

    capacity: int = Field(ge=1)
    previous_capacity: int = Field(ge=1)
    status: SessionStatus


class SessionEnrollmentClosedV1(_SessionEvent):
    """A session stopped taking enrollments."""

    type = "tpp.registry.session.enrollment_closed.v1"

    status: Literal[SessionStatus.ENROLLMENT_CLOSED] = SessionStatus.ENROLLMENT_CLOSED


class SessionStartedV1(_SessionEvent):
    """A session began."""

    type = "tpp.registry.session.started.v1"

    status: Literal[SessionStatus.IN_PROGRESS] = SessionStatus.IN_PROGRESS


class SessionCompletedV1(_SessionEvent):
    """A session ended and counts as held."""

    type = "tpp.registry.session.completed.v1"

    status: Literal[SessionStatus.COMPLETED] = SessionStatus.COMPLETED


class SessionCancelledV1(_SessionEvent):
    """A session was cancelled before completion; its enrollments are cancelled with it."""

    type = "tpp.registry.session.cancelled.v1"

    reason: str = Field(min_length=1, max_length=2000)
    previous_status: SessionStatus
    status: Literal[SessionStatus.CANCELLED] = SessionStatus.CANCELLED


SessionEvent: TypeAlias = (
    SessionCreatedV1
    | SessionDraftUpdatedV1
    | SessionPublishedV1
    | SessionRescheduledV1
    | SessionVenueChangedV1
    | SessionCapacityChangedV1
    | SessionEnrollmentClosedV1
    | SessionStartedV1
    | SessionCompletedV1
    | SessionCancelledV1
)
