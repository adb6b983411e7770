"""Events of the enrollment context: trainees and their enrollments; no personal data."""

from __future__ import annotations

import uuid
from datetime import date
from typing import TypeAlias

from pydantic import AwareDatetime, Field

from tpp_contracts.envelope import Event
from tpp_contracts.topics import ENROLLMENTS, TRAINEES
from tpp_contracts.vocab import (
    CountryCode,
    EnrollmentStatus,
    FollowUpChannel,
    FollowUpOutcome,
    Gender,
    ProfessionCategory,
)

# Personal data (names, emails, passport numbers, birth dates, organizations, free-text
# comments) stays in the enrollment service: these events carry ids and the non-personal
# attributes other services aggregate on. A test walks every model's fields to keep it so.

# --- trainees --------------------------------------------------------------------------------


class _TraineeProfile(Event):
    """The non-personal profile of a trainee."""

    topic = TRAINEES

    trainee_id: uuid.UUID
    country: CountryCode = Field(description="The trainee's country (ISO 3166-1 alpha-2).")
    gender: Gender
    profession: ProfessionCategory


class TraineeRegisteredV1(_TraineeProfile):
    """A trainee was registered (once per person: matched on passport number and country)."""

    type = "tpp.enrollment.trainee.registered.v1"


class TraineeProfileUpdatedV1(_TraineeProfile):
    """A trainee's non-personal profile changed; the event carries all of it."""

    type = "tpp.enrollment.trainee.profile_updated.v1"


class TraineeErasedV1(Event):
    """A trainee's personal data was erased; consumers drop anything keyed by the id."""

    type = "tpp.enrollment.trainee.erased.v1"
    topic = TRAINEES

    trainee_id: uuid.UUID


TraineeEvent: TypeAlias = TraineeRegisteredV1 | TraineeProfileUpdatedV1 | TraineeErasedV1

# --- enrollments -----------------------------------------------------------------------------


class _EnrollmentEvent(Event):
    """Fields every enrollment event carries, so consumers aggregate without calling back.

    Keyed by session id (every decision about a session's places is ordered); the
    CloudEvents subject is the enrollment id.
    """

    topic = ENROLLMENTS

    enrollment_id: uuid.UUID
    session_id: uuid.UUID
    trainee_id: uuid.UUID
    country: CountryCode = Field(description="The trainee's country (ISO 3166-1 alpha-2).")
    gender: Gender
    profession: ProfessionCategory

    def subject(self) -> str:
        """The CloudEvents subject: the enrollment (the Kafka key is its session)."""
        return str(self.enrollment_id)


class _Transition(_EnrollmentEvent):
    """An enrollment event that moves the enrollment to a new status."""

    previous_status: EnrollmentStatus | None = Field(
        description="The status before the change; None when the enrollment is created in it."
    )


class EnrollmentSubmittedV1(_EnrollmentEvent):
    """A trainee applied for a place in a session; the application awaits review."""

    type = "tpp.enrollment.enrollment.submitted.v1"


class EnrollmentAcceptedV1(_Transition):
    """A trainee was given a place in a session."""

    type = "tpp.enrollment.enrollment.accepted.v1"

    promoted_from_waitlist: bool = Field(
        default=False,
        description="The trainee came off the waitlist when a place was freed or added.",
    )


class EnrollmentWaitlistedV1(_Transition):
    """A trainee was put on a session's waitlist (the session or the country is full)."""

    type = "tpp.enrollment.enrollment.waitlisted.v1"

    position: int | None = Field(ge=1, description="1 for the first in line, when known.")


class EnrollmentRejectedV1(_Transition):
    """A trainee's application was turned down."""

    type = "tpp.enrollment.enrollment.rejected.v1"

    reason: str = Field(
        min_length=1,
        max_length=2000,
        description="A ``RejectionReason`` value (``not_eligible``, ``incomplete_application``,"
        " ``not_selected``, ``country_quota``, ``other``); never the operator's own words."
        " Consumers treat a value they do not know as ``other``.",
    )


class EnrollmentWithdrawnV1(_Transition):
    """A trainee gave up their place or application; the place is freed."""

    type = "tpp.enrollment.enrollment.withdrawn.v1"

    reason: str | None = Field(
        max_length=2000,
        description="A ``WithdrawalReason`` value (``schedule_conflict``, ``visa_or_travel``,"
        " ``employer_request``, ``personal``, ``other``), or null when none was given; never"
        " the trainee's own words. Consumers treat a value they do not know as ``other``.",
    )


class EnrollmentCancelledV1(_Transition):
    """An enrollment was cancelled by the platform, e.g. because its session was."""

    type = "tpp.enrollment.enrollment.cancelled.v1"

    reason: str = Field(
        min_length=1, max_length=2000, description="Why, e.g. ``session_cancelled``."
    )


class TraineeAttendedV1(_Transition):
    """An accepted trainee checked in at the session."""

    type = "tpp.enrollment.enrollment.attended.v1"

    checked_in_at: AwareDatetime


class TraineeNoShowV1(_Transition):
    """An accepted trainee did not come to the session."""

    type = "tpp.enrollment.enrollment.no_show.v1"


class EnrollmentCompletedV1(_Transition):
    """A trainee completed the session and received a certificate."""

    type = "tpp.enrollment.enrollment.completed.v1"

    certificate_number: str = Field(min_length=1, max_length=100)
    completed_on: date


class EvaluationSubmittedV1(_EnrollmentEvent):
    """A trainee evaluated the session; the comment itself stays in the enrollment service."""

    type = "tpp.enrollment.evaluation.submitted.v1"

    evaluation_id: uuid.UUID
    score: int = Field(ge=1, le=5)
    has_comment: bool = Field(description="The trainee wrote a comment (not carried here).")


class FollowUpRecordedV1(_EnrollmentEvent):
    """A follow-up with a former trainee was recorded."""

    type = "tpp.enrollment.follow_up.recorded.v1"

    follow_up_id: uuid.UUID
    followed_up_on: date = Field(description="The day the follow-up took place.")
    channel: FollowUpChannel
    outcome: FollowUpOutcome


EnrollmentEvent: TypeAlias = (
    EnrollmentSubmittedV1
    | EnrollmentAcceptedV1
    | EnrollmentWaitlistedV1
    | EnrollmentRejectedV1
    | EnrollmentWithdrawnV1
    | EnrollmentCancelledV1
    | TraineeAttendedV1
    | TraineeNoShowV1
    | EnrollmentCompletedV1
    | EvaluationSubmittedV1
    | FollowUpRecordedV1
)
