"""Registry domain: a training session's details and lifecycle, as pure functions.

``decide(state, command, home_country=...)`` returns the new state and the events that say
what changed; it never touches a database. Each event bumps the session's version by one,
so every event of a session carries a distinct, increasing version.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from tpp_contracts.envelope import Event, new_id
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
from tpp_contracts.vocab import SessionStatus, TechnicalField

S = SessionStatus

#: Which lifecycle command moves a session from which state to which.
TRANSITIONS: dict[str, dict[SessionStatus, SessionStatus]] = {
    "publish": {S.DRAFT: S.PUBLISHED},
    "close_enrollment": {S.PUBLISHED: S.ENROLLMENT_CLOSED},
    "start": {S.ENROLLMENT_CLOSED: S.IN_PROGRESS},
    "complete": {S.IN_PROGRESS: S.COMPLETED},
    "cancel": {s: S.CANCELLED for s in (S.DRAFT, S.PUBLISHED, S.ENROLLMENT_CLOSED, S.IN_PROGRESS)},
}
TERMINAL = frozenset({S.COMPLETED, S.CANCELLED})
#: States in which a session's details may still change (freely while draft).
REVISABLE = frozenset({S.DRAFT, S.PUBLISHED, S.ENROLLMENT_CLOSED})
#: Details that may change after publication, each change with its own event.
PUBLISHED_REVISABLE = frozenset(
    {"start_date", "end_date", "year", "venue_city", "venue_country", "capacity"}
)


@dataclass(frozen=True, slots=True)
class SessionDetails:
    """What an organizer describes about a session."""

    organizer_id: uuid.UUID
    title: str
    field: TechnicalField
    year: int
    start_date: date
    end_date: date
    venue_city: str
    venue_country: str
    capacity: int
    languages: tuple[str, ...]
    description: str | None = None
    review_required: bool = False
    country_limit: int | None = None


DETAIL_FIELDS = frozenset(f.name for f in dataclasses.fields(SessionDetails))


@dataclass(frozen=True, slots=True)
class SessionState(SessionDetails):
    """A session: its details, where it is in its lifecycle, and its version."""

    id: uuid.UUID = field(default_factory=new_id)
    overseas: bool = False
    status: SessionStatus = S.DRAFT
    version: int = 1


class InvalidTransitionError(Exception):
    """A lifecycle command that the session's current state does not allow."""

    def __init__(self, command: str, current: SessionStatus) -> None:
        self.command = command
        self.current = current
        self.allowed = allowed_commands(current)
        super().__init__(f"cannot {command.replace('_', ' ')} a session that is {current.value}")


class InvalidSessionError(ValueError):
    """Details that break a rule of sessions (dates, year, capacity); names the field."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.detail = detail


class DetailNotRevisableError(Exception):
    """A change to details that are fixed once the session is published."""

    def __init__(self, fields: list[str], current: SessionStatus) -> None:
        self.fields = fields
        self.current = current
        super().__init__(
            f"{', '.join(fields)} cannot change once a session is {current.value};"
            f" only {', '.join(sorted(PUBLISHED_REVISABLE))} can"
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """A lifecycle command: publish, close_enrollment, start, complete."""

    command: str


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel the session, with the reason given to trainees and subscribers."""

    reason: str


@dataclass(frozen=True, slots=True)
class Revise:
    """Change some details (only the keys given)."""

    changes: Mapping[str, Any]


Command = Transition | Cancel | Revise


@dataclass(frozen=True, slots=True)
class Decision:
    """The state after a command and the events saying what changed (none: no change)."""

    state: SessionState
    events: list[Event]


def allowed_commands(status: SessionStatus) -> list[str]:
    """The lifecycle commands a session in this state accepts."""
    return [command for command, moves in TRANSITIONS.items() if status in moves]


def validate(details: SessionDetails) -> None:
    """Raise InvalidSessionError unless the details are consistent."""
    if details.end_date < details.start_date:
        raise InvalidSessionError("end_date", "end_date is before start_date")
    if details.start_date.year != details.year:
        raise InvalidSessionError("year", "year does not match the year of start_date")
    if details.capacity < 1:
        raise InvalidSessionError("capacity", "capacity must be at least 1")
    if details.country_limit is not None and details.country_limit < 1:
        raise InvalidSessionError("country_limit", "country_limit must be at least 1")
    if not details.languages:
        raise InvalidSessionError("languages", "at least one language")


def create(
    details: SessionDetails, *, home_country: str, session_id: uuid.UUID | None = None
) -> Decision:
    """A new draft session and its created event."""
    validate(details)
    values = {f: getattr(details, f) for f in DETAIL_FIELDS}
    state = SessionState(
        **values,
        id=session_id or new_id(),
        overseas=details.venue_country != home_country,
    )
    return Decision(state, [SessionCreatedV1(**_details(state))])


def decide(state: SessionState, command: Command, *, home_country: str) -> Decision:
    """The new state and events of a command, or an error saying why it is refused."""
    if isinstance(command, Revise):
        return _revise(state, command.changes, home_country)
    name = "cancel" if isinstance(command, Cancel) else command.command
    moves = TRANSITIONS.get(name)
    if moves is None:
        raise ValueError(f"unknown command {name!r}")
    if state.status not in moves:
        raise InvalidTransitionError(name, state.status)
    new = replace(state, status=moves[state.status], version=state.version + 1)
    ids = {"session_id": new.id, "version": new.version}
    event: Event
    if isinstance(command, Cancel):
        event = SessionCancelledV1(**ids, reason=command.reason, previous_status=state.status)
    elif name == "publish":
        event = SessionPublishedV1(**_details(new))
    elif name == "close_enrollment":
        event = SessionEnrollmentClosedV1(**ids)
    elif name == "start":
        event = SessionStartedV1(**ids)
    else:
        event = SessionCompletedV1(**ids)
    return Decision(new, [event])


def _revise(state: SessionState, changes: Mapping[str, Any], home: str) -> Decision:
    if state.status not in REVISABLE:
        raise InvalidTransitionError("revise", state.status)
    unknown = set(changes) - DETAIL_FIELDS
    if unknown:
        raise ValueError(f"not session details: {sorted(unknown)}")
    changed = {k: v for k, v in changes.items() if getattr(state, k) != v}
    if not changed:
        return Decision(state, [])
    new = replace(state, **changed)
    new = replace(new, overseas=new.venue_country != home)
    validate(new)
    if state.status is S.DRAFT:
        new = replace(new, version=state.version + 1)
        return Decision(new, [SessionDraftUpdatedV1(**_details(new))])
    fixed = sorted(set(changed) - PUBLISHED_REVISABLE)
    if fixed:
        raise DetailNotRevisableError(fixed, state.status)
    return _published_changes(state, new, set(changed))


def _published_changes(old: SessionState, new: SessionState, changed: set[str]) -> Decision:
    # One event per kind of change, each with its own version, in a fixed order.
    events: list[Event] = []
    version = old.version
    common = {"session_id": new.id, "status": new.status}
    if changed & {"start_date", "end_date", "year"}:
        version += 1
        events.append(
            SessionRescheduledV1(
                **common,
                version=version,
                start_date=new.start_date,
                end_date=new.end_date,
                year=new.year,
            )
        )
    if changed & {"venue_city", "venue_country"}:
        version += 1
        events.append(
            SessionVenueChangedV1(
                **common,
                version=version,
                venue_city=new.venue_city,
                venue_country=new.venue_country,
                overseas=new.overseas,
            )
        )
    if "capacity" in changed:
        version += 1
        events.append(
            SessionCapacityChangedV1(
                **common, version=version, capacity=new.capacity, previous_capacity=old.capacity
            )
        )
    return Decision(replace(new, version=version), events)


def _details(state: SessionState) -> dict[str, Any]:
    data = {f: getattr(state, f) for f in DETAIL_FIELDS}
    data["languages"] = list(state.languages)
    return data | {"session_id": state.id, "version": state.version, "overseas": state.overseas}


@dataclass(frozen=True, slots=True)
class SessionFilter:
    """Filters of the session list; None means any."""

    year: int | None = None
    field: TechnicalField | None = None
    organizer_id: uuid.UUID | None = None
    status: SessionStatus | None = None
    overseas: bool | None = None
    country: str | None = None
