"""Request and response models of the enrollment API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

import pycountry
from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator
from tpp_contracts.vocab import (
    EnrollmentStatus,
    FollowUpChannel,
    FollowUpOutcome,
    Gender,
    ProfessionCategory,
    RejectionReason,
    SessionStatus,
    WithdrawalReason,
)
from tpp_plumbing.web.limits import Text


def country_code(code: str) -> str:
    """An upper-case ISO 3166-1 alpha-2 code; raises ValueError for anything else."""
    code = code.strip().upper()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return code


class TraineeIn(BaseModel):
    """A trainee's registration. Personal data stays in this service."""

    model_config = ConfigDict(extra="forbid")

    full_name: Text = Field(min_length=1, max_length=300)
    country: str = Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2.")
    gender: Gender
    profession: ProfessionCategory
    organization: Text | None = Field(None, max_length=300)
    email: EmailStr | None = Field(None, max_length=254)
    passport_number: str = Field(min_length=3, max_length=30, pattern=r"^[A-Za-z0-9]+$")
    birth_date: date | None = None

    @field_validator("country")
    @classmethod
    def _country(cls, code: str) -> str:
        return country_code(code)


class Trainee(BaseModel):
    """A registered trainee; after erasure only the id and non-personal attributes remain."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    full_name: str | None = Field(description="None once erased.")
    country: str = Field(description="ISO 3166-1 alpha-2.")
    gender: Gender
    profession: ProfessionCategory
    organization: str | None = None
    email: str | None = None
    passport_number: str | None = Field(None, description="None once erased.")
    birth_date: date | None = None
    erased_at: datetime | None = Field(
        None, description="When the personal data was erased (on request); None if it was not."
    )
    withheld: bool = Field(
        False,
        description="The personal fields are withheld from this caller: an organizer sees"
        " those of the trainees it registered itself or an operator shared with it.",
    )

    def without_personal_data(self) -> Trainee:
        """The view of an organizer that may not see this trainee's personal data."""
        return self.model_copy(update=dict.fromkeys(PERSONAL_FIELDS) | {"withheld": True})


#: The fields of a trainee an organizer sees only where it supplied them or was shared them.
PERSONAL_FIELDS = ("full_name", "organization", "email", "passport_number", "birth_date")


class TraineePage(BaseModel):
    """One page of a trainee search."""

    items: list[Trainee]
    limit: int
    offset: int


class EnrollmentIn(BaseModel):
    """A request for a place in a session."""

    model_config = ConfigDict(extra="forbid")

    trainee_id: uuid.UUID


class Enrollment(BaseModel):
    """An enrollment of a trainee in a session."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    session_id: uuid.UUID
    trainee_id: uuid.UUID
    status: EnrollmentStatus
    waitlist_position: int | None = Field(None, description="1 = next in line, if waitlisted.")
    reason: str | None = Field(
        None, description="The category of a rejection, withdrawal or cancellation."
    )
    note: str | None = Field(None, description="The decider's words about the reason.")
    checked_in_at: datetime | None = None
    completed_on: date | None = None
    certificate_number: str | None = None


class EnrollmentList(BaseModel):
    """A session's enrollments (the waitlist in order)."""

    items: list[Enrollment]


#: The words of whoever decided. They may name the trainee, so they stay in this service (the
#: events carry the reason's category only) and are emptied when the trainee is erased.
Note = Annotated[Text | None, Field(min_length=1, max_length=2000)]


class WithdrawIn(BaseModel):
    """A withdrawal, with an optional reason (a category) and note."""

    model_config = ConfigDict(extra="forbid")

    reason: WithdrawalReason | None = None
    note: Note = None


class RejectIn(BaseModel):
    """A rejection: the reason (a category) is required, a note is not."""

    model_config = ConfigDict(extra="forbid")

    reason: RejectionReason
    note: Note = None


class CompleteIn(BaseModel):
    """A completion; the day defaults to today."""

    model_config = ConfigDict(extra="forbid")

    completed_on: date | None = None


class EvaluationIn(BaseModel):
    """A trainee's evaluation of the session."""

    model_config = ConfigDict(extra="forbid")

    score: int = Field(ge=1, le=5)
    comment: Text | None = Field(None, max_length=5000)


class Evaluation(EvaluationIn):
    """A recorded evaluation."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    enrollment_id: uuid.UUID


class FollowUpIn(BaseModel):
    """A follow-up with a former trainee."""

    model_config = ConfigDict(extra="forbid")

    followed_up_on: date
    channel: FollowUpChannel
    outcome: FollowUpOutcome
    note: Text | None = Field(None, max_length=5000)


class FollowUp(FollowUpIn):
    """A recorded follow-up."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    enrollment_id: uuid.UUID


class FollowUpDue(BaseModel):
    """A completed enrollment whose next follow-up is due."""

    enrollment_id: uuid.UUID
    session_id: uuid.UUID
    trainee_id: uuid.UUID
    completed_on: date
    months: int = Field(description="The milestone: 3, 6 or 12 months after completion.")
    due_on: date
    closes_on: date = Field(
        description="A follow-up dated before this day meets the milestone; after, it is missed."
    )
    recorded: int = Field(description="Follow-ups recorded so far, for any milestone.")


class SessionView(BaseModel):
    """This service's view of a registry session."""

    model_config = ConfigDict(extra="ignore")

    session_id: uuid.UUID
    status: SessionStatus
    year: int
    start_date: date
    end_date: date
    capacity: int
    accepted: int
    review_required: bool
    country_limit: int | None
    venue_city: str | None = None
    venue_country: str | None = None
    version: int
    organizer_id: uuid.UUID | None = None


class ImportRowError(BaseModel):
    """A CSV row that was not processed, and why."""

    row: int = Field(description="1-based row number, the header being row 1.")
    reason: str


class ImportJob(BaseModel):
    """A bulk nomination import and its progress."""

    id: uuid.UUID
    status: str = Field(description="pending, running, done or failed.")
    filename: str | None
    total: int
    processed: int
    succeeded: int
    failed: int
    error: str | None = None
    errors: list[ImportRowError] = Field(default_factory=list)
