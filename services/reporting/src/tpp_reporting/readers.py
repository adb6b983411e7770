"""What reporting reads from the event log: a tolerant, fast reader of the contract events.

The contracts (``tpp_contracts``) are the pydantic source of truth; reporting reads only the
fields it projects, with msgspec, because decoding is on the path of tens of thousands of
events a second (docs/decisions/0006-msgspec-readers-in-reporting.md). Unknown event types
decode to ``None``; unknown and newer optional fields are ignored; a message that is not a
CloudEvents envelope, or whose fields reporting reads are missing or of the wrong type, is
poison. A unit test checks every contract event against its mirror here: the same values,
every field read or listed in ``UNREAD``.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from tpp_contracts import enrollment as en
from tpp_contracts import registry as rg
from tpp_contracts.vocab import (
    EnrollmentStatus,
    FollowUpChannel,
    FollowUpOutcome,
    Gender,
    OrganizerKind,
    ProfessionCategory,
    SessionStatus,
    TechnicalField,
)

Country = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")]


class _Envelope(msgspec.Struct, gc=False):
    id: uuid.UUID
    type: str
    time: datetime
    specversion: Literal["1.0"]
    source: str
    data: msgspec.Raw


class OrganizerState(msgspec.Struct, frozen=True, gc=False):
    """OrganizerCreatedV1 / OrganizerUpdatedV1."""

    organizer_id: uuid.UUID
    name: str
    kind: OrganizerKind
    country: Country
    province: str | None = None


class PlanSet(msgspec.Struct, frozen=True, gc=False):
    """AnnualPlanSetV1."""

    year: int
    planned_sessions: Annotated[int, msgspec.Meta(ge=0)]
    revision: int
    budget: Decimal | None = None
    currency: str | None = None
    planned_overseas_sessions: int | None = None


class SessionDetails(msgspec.Struct, frozen=True, gc=False):
    """SessionCreatedV1 / SessionDraftUpdatedV1 / SessionPublishedV1: every detail."""

    session_id: uuid.UUID
    version: int
    organizer_id: uuid.UUID
    title: str
    field: TechnicalField
    year: int
    venue_country: Country
    overseas: bool
    capacity: int
    status: SessionStatus


class SessionChange(msgspec.Struct, frozen=True, gc=False):
    """Any other session event: the new status, and what else it carries."""

    session_id: uuid.UUID
    version: int
    status: SessionStatus
    year: int | None = None
    capacity: int | None = None
    venue_country: Country | None = None
    overseas: bool | None = None


class EnrollmentChange(msgspec.Struct, frozen=True, gc=False):
    """An enrollment event that moves the enrollment to a status."""

    enrollment_id: uuid.UUID
    session_id: uuid.UUID
    trainee_id: uuid.UUID
    country: Country
    gender: Gender
    profession: ProfessionCategory


class EvaluationSubmitted(msgspec.Struct, frozen=True, gc=False):
    """EvaluationSubmittedV1."""

    evaluation_id: uuid.UUID
    enrollment_id: uuid.UUID
    session_id: uuid.UUID
    score: Annotated[int, msgspec.Meta(ge=1, le=5)]


class FollowUpRecorded(msgspec.Struct, frozen=True, gc=False):
    """FollowUpRecordedV1."""

    follow_up_id: uuid.UUID
    enrollment_id: uuid.UUID
    session_id: uuid.UUID
    followed_up_on: date
    channel: FollowUpChannel
    outcome: FollowUpOutcome


class TraineeErased(msgspec.Struct, frozen=True, gc=False):
    """TraineeErasedV1."""

    trainee_id: uuid.UUID


#: The enrollment status each status-changing event type leads to.
STATUS_OF: dict[str, EnrollmentStatus] = {
    en.EnrollmentSubmittedV1.type: EnrollmentStatus.SUBMITTED,
    en.EnrollmentAcceptedV1.type: EnrollmentStatus.ACCEPTED,
    en.EnrollmentWaitlistedV1.type: EnrollmentStatus.WAITLISTED,
    en.EnrollmentRejectedV1.type: EnrollmentStatus.REJECTED,
    en.EnrollmentWithdrawnV1.type: EnrollmentStatus.WITHDRAWN,
    en.EnrollmentCancelledV1.type: EnrollmentStatus.CANCELLED,
    en.TraineeAttendedV1.type: EnrollmentStatus.ATTENDED,
    en.TraineeNoShowV1.type: EnrollmentStatus.NO_SHOW,
    en.EnrollmentCompletedV1.type: EnrollmentStatus.COMPLETED,
}

_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    rg.OrganizerCreatedV1.type: msgspec.json.Decoder(OrganizerState),
    rg.OrganizerUpdatedV1.type: msgspec.json.Decoder(OrganizerState),
    rg.AnnualPlanSetV1.type: msgspec.json.Decoder(PlanSet),
    **dict.fromkeys(
        (rg.SessionCreatedV1.type, rg.SessionDraftUpdatedV1.type, rg.SessionPublishedV1.type),
        msgspec.json.Decoder(SessionDetails),
    ),
    **dict.fromkeys(
        (
            rg.SessionRescheduledV1.type,
            rg.SessionVenueChangedV1.type,
            rg.SessionCapacityChangedV1.type,
            rg.SessionEnrollmentClosedV1.type,
            rg.SessionStartedV1.type,
            rg.SessionCompletedV1.type,
            rg.SessionCancelledV1.type,
        ),
        msgspec.json.Decoder(SessionChange),
    ),
    **dict.fromkeys(STATUS_OF, msgspec.json.Decoder(EnrollmentChange)),
    en.EvaluationSubmittedV1.type: msgspec.json.Decoder(EvaluationSubmitted),
    en.FollowUpRecordedV1.type: msgspec.json.Decoder(FollowUpRecorded),
    en.TraineeErasedV1.type: msgspec.json.Decoder(TraineeErased),
}

#: The contract fields reporting does not read, per event type. Together with the fields of
#: the type's mirror above they are every field of its contract model: a field added to a
#: contract fails ``test_reporting_readers`` until it is read here or listed here.
UNREAD: dict[str, frozenset[str]] = {
    rg.OrganizerCreatedV1.type: frozenset({"contact"}),
    rg.OrganizerUpdatedV1.type: frozenset({"contact"}),
    rg.AnnualPlanSetV1.type: frozenset({"note"}),
    **dict.fromkeys(
        (rg.SessionCreatedV1.type, rg.SessionDraftUpdatedV1.type, rg.SessionPublishedV1.type),
        frozenset(
            {
                "country_limit",
                "description",
                "end_date",
                "languages",
                "review_required",
                "start_date",
                "venue_city",
            }
        ),
    ),
    rg.SessionRescheduledV1.type: frozenset({"start_date", "end_date"}),
    rg.SessionVenueChangedV1.type: frozenset({"venue_city"}),
    rg.SessionCapacityChangedV1.type: frozenset({"previous_capacity"}),
    rg.SessionEnrollmentClosedV1.type: frozenset(),
    rg.SessionStartedV1.type: frozenset(),
    rg.SessionCompletedV1.type: frozenset(),
    rg.SessionCancelledV1.type: frozenset({"previous_status", "reason"}),
    en.EnrollmentSubmittedV1.type: frozenset(),
    en.EnrollmentAcceptedV1.type: frozenset({"previous_status", "promoted_from_waitlist"}),
    en.EnrollmentWaitlistedV1.type: frozenset({"previous_status", "position"}),
    en.EnrollmentRejectedV1.type: frozenset({"previous_status", "reason"}),
    en.EnrollmentWithdrawnV1.type: frozenset({"previous_status", "reason"}),
    en.EnrollmentCancelledV1.type: frozenset({"previous_status", "reason"}),
    en.TraineeAttendedV1.type: frozenset({"previous_status", "checked_in_at"}),
    en.TraineeNoShowV1.type: frozenset({"previous_status"}),
    en.EnrollmentCompletedV1.type: frozenset(
        {"previous_status", "certificate_number", "completed_on"}
    ),
    # The enrollment events already carried the trainee's fields to reporting.
    en.EvaluationSubmittedV1.type: frozenset(
        {"trainee_id", "country", "gender", "profession", "has_comment"}
    ),
    en.FollowUpRecordedV1.type: frozenset({"trainee_id", "country", "gender", "profession"}),
    en.TraineeErasedV1.type: frozenset(),
}

_ENVELOPE = msgspec.json.Decoder(_Envelope)

#: The event types reporting projects (others are ignored).
KNOWN_TYPES = frozenset(_DECODERS)


def mirror(event_type: str) -> type[msgspec.Struct]:
    """The struct reporting reads an event type's data into (KeyError if it reads none)."""
    struct: type[msgspec.Struct] = _DECODERS[event_type].type
    return struct


class Event(msgspec.Struct, frozen=True, gc=False):
    """One decoded event: its envelope's id, type and time, and the fields reporting reads."""

    id: uuid.UUID
    type: str
    time: datetime
    data: Any


class PoisonError(ValueError):
    """A message reporting can never apply (the reason names no field value)."""


def decode(raw: bytes | None) -> Event | None:
    """Decode one message value; ``None`` for an event type reporting does not project.

    Raises:
        PoisonError: not JSON, not an envelope, or a projected field is missing or invalid.
    """
    if raw is None:
        raise PoisonError("empty message value")
    try:
        envelope = _ENVELOPE.decode(raw)
    except msgspec.DecodeError as error:
        kind = "not a CloudEvents envelope"
        if isinstance(error, msgspec.DecodeError) and not isinstance(
            error, msgspec.ValidationError
        ):
            kind = "not JSON"
        raise PoisonError(f"{kind}: {_reason(error)}") from None
    decoder = _DECODERS.get(envelope.type)
    if decoder is None:
        return None
    if envelope.time.tzinfo is None:
        raise PoisonError("not a CloudEvents envelope: time has no offset")
    try:
        data = decoder.decode(envelope.data)
    except msgspec.DecodeError as error:
        raise PoisonError(f"invalid {envelope.type}: {_reason(error)}") from None
    return Event(envelope.id, envelope.type, envelope.time, data)


def _reason(error: msgspec.DecodeError) -> str:
    # "<path>: <kind>" like the contracts' own summaries; quoted input values are blanked.
    message = re.sub(r"'[^']*'", "'…'", str(error))
    kind, _, path = message.partition(" - at `$")
    path = path.rstrip("`").lstrip(".") or "<root>"
    return f"{path}: {kind}"[:200]
