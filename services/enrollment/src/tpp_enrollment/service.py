"""Enrollment use cases; each owns its transaction and writes its events to the outbox."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pycountry
from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tpp_contracts.enrollment import (
    EnrollmentAcceptedV1,
    EnrollmentSubmittedV1,
    EnrollmentWaitlistedV1,
    TraineeRegisteredV1,
)
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
)
from tpp_contracts.vocab import EnrollmentStatus, Gender, ProfessionCategory, SessionStatus
from tpp_plumbing.outbox import Outbox
from tpp_plumbing.problems import ConflictError, NotFoundError

from tpp_enrollment import tables
from tpp_enrollment.domain import EnrollmentRefusedError, Places, decide


class TraineeIn(BaseModel):
    """A trainee's registration. Personal data stays in this service."""

    model_config = ConfigDict(extra="forbid")

    full_name: str = Field(min_length=1, max_length=300)
    country: str = Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2.")
    gender: Gender
    profession: ProfessionCategory
    organization: str | None = Field(None, max_length=300)
    email: EmailStr | None = None
    passport_number: str = Field(min_length=3, max_length=30, pattern=r"^[A-Za-z0-9]+$")
    birth_date: date | None = None

    @field_validator("country")
    @classmethod
    def _country(cls, code: str) -> str:
        code = code.upper()
        if pycountry.countries.get(alpha_2=code) is None:
            raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
        return code


class Trainee(TraineeIn):
    """A registered trainee."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID


class EnrollmentIn(BaseModel):
    """A request for a place in a session."""

    model_config = ConfigDict(extra="forbid")

    trainee_id: uuid.UUID


class Enrollment(BaseModel):
    """An enrollment of a trainee in a session."""

    id: uuid.UUID
    session_id: uuid.UUID
    trainee_id: uuid.UUID
    status: EnrollmentStatus


class SessionView(BaseModel):
    """This service's view of a registry session."""

    session_id: uuid.UUID
    status: SessionStatus
    year: int
    capacity: int
    accepted: int
    review_required: bool
    country_limit: int | None
    version: int


class EnrollmentService:
    """The enrollment service's use cases."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], outbox: Outbox) -> None:
        self._sessions = sessions
        self._outbox = outbox

    async def register_trainee(self, data: TraineeIn) -> tuple[Trainee, bool]:
        """Register a trainee; the same passport and country returns the existing one."""
        trainee = Trainee(id=uuid.uuid4(), **data.model_dump())
        async with self._sessions() as db, db.begin():
            row = dict(trainee.model_dump(mode="python")) | {
                "passport_number": data.passport_number.upper()
            }
            created = await db.scalar(
                insert(tables.trainee)
                .values(**row)
                .on_conflict_do_nothing(constraint="uq_trainee_passport_country")
                .returning(tables.trainee.c.id)
            )
            if created is None:
                existing = (
                    (
                        await db.execute(
                            select(tables.trainee).where(
                                tables.trainee.c.passport_number == row["passport_number"],
                                tables.trainee.c.country == data.country,
                            )
                        )
                    )
                    .mappings()
                    .one()
                )
                return Trainee.model_validate(dict(existing)), False
            await self._outbox.add(
                db,
                [
                    TraineeRegisteredV1(
                        trainee_id=trainee.id,
                        country=trainee.country,
                        gender=trainee.gender,
                        profession=trainee.profession,
                    )
                ],
            )
        return trainee, True

    async def enroll(self, session_id: uuid.UUID, data: EnrollmentIn) -> Enrollment:
        """Ask for a place: accepted while one is free, else waitlisted (or submitted)."""
        async with self._sessions() as db, db.begin():
            # The session row lock serializes every decision about its places.
            view = (
                (
                    await db.execute(
                        select(tables.session_view)
                        .where(tables.session_view.c.session_id == session_id)
                        .with_for_update()
                    )
                )
                .mappings()
                .first()
            )
            if view is None:
                raise NotFoundError(f"no open session {session_id}")
            person = (
                (
                    await db.execute(
                        select(tables.trainee).where(tables.trainee.c.id == data.trainee_id)
                    )
                )
                .mappings()
                .first()
            )
            if person is None:
                raise NotFoundError(f"no trainee {data.trainee_id}", field="trainee_id")
            places = Places(
                status=SessionStatus(view["status"]),
                capacity=view["capacity"],
                accepted=view["accepted"],
                review_required=view["review_required"],
            )
            try:
                status = decide(places)
            except EnrollmentRefusedError as error:
                raise ConflictError(str(error), session_status=places.status.value) from None
            enrollment = Enrollment(
                id=uuid.uuid4(), session_id=session_id, trainee_id=data.trainee_id, status=status
            )
            inserted = await db.scalar(
                insert(tables.enrollment)
                .values(**enrollment.model_dump() | {"status": status.value})
                .on_conflict_do_nothing(constraint="uq_enrollment_session_trainee")
                .returning(tables.enrollment.c.id)
            )
            if inserted is None:
                raise ConflictError("the trainee is already enrolled in this session")
            if status is EnrollmentStatus.ACCEPTED:
                await db.execute(
                    update(tables.session_view)
                    .where(tables.session_view.c.session_id == session_id)
                    .values(accepted=tables.session_view.c.accepted + 1)
                )
            common: dict[str, Any] = {
                "enrollment_id": enrollment.id,
                "session_id": session_id,
                "trainee_id": data.trainee_id,
                "country": person["country"],
                "gender": person["gender"],
                "profession": person["profession"],
            }
            event: Event
            if status is EnrollmentStatus.ACCEPTED:
                event = EnrollmentAcceptedV1(**common, previous_status=None)
            elif status is EnrollmentStatus.WAITLISTED:
                event = EnrollmentWaitlistedV1(**common, previous_status=None, position=None)
            else:
                event = EnrollmentSubmittedV1(**common)
            await self._outbox.add(db, [event])
        return enrollment

    async def get_session_view(self, session_id: uuid.UUID) -> SessionView:
        """This service's view of a session."""
        async with self._sessions() as db:
            row = (
                (
                    await db.execute(
                        select(tables.session_view).where(
                            tables.session_view.c.session_id == session_id
                        )
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            raise NotFoundError(f"no session {session_id} in the enrollment service's view")
        return SessionView.model_validate(dict(row))


# --- the session view: projection of the registry's session events ----------------------


async def on_session_details(
    db: AsyncSession,
    event: SessionCreatedV1 | SessionDraftUpdatedV1 | SessionPublishedV1,
    _: Envelope,
) -> None:
    """A session's full details: insert or refresh the view (newer versions only)."""
    values = {
        "status": event.status.value,
        "year": event.year,
        "start_date": event.start_date,
        "end_date": event.end_date,
        "capacity": event.capacity,
        "review_required": event.review_required,
        "country_limit": event.country_limit,
        "version": event.version,
    }
    view = tables.session_view
    await db.execute(
        insert(view)
        .values(session_id=event.session_id, **values)
        .on_conflict_do_update(
            index_elements=[view.c.session_id],
            set_=values | {"updated_at": func.now()},
            where=view.c.version < event.version,
        )
    )


async def on_session_change(db: AsyncSession, event: Any, _: Envelope) -> None:
    """A partial change (dates, capacity, status): applied if newer than the view."""
    fields = {"status": SessionStatus(event.status).value, "version": event.version}
    if isinstance(event, SessionRescheduledV1):
        fields |= {"start_date": event.start_date, "end_date": event.end_date, "year": event.year}
    if isinstance(event, SessionCapacityChangedV1):
        fields["capacity"] = event.capacity
    view = tables.session_view
    await db.execute(
        update(view)
        .where(view.c.session_id == event.session_id, view.c.version < event.version)
        .values(**fields)
    )


SESSION_HANDLERS: dict[type[Event], Any] = {
    SessionCreatedV1: on_session_details,
    SessionDraftUpdatedV1: on_session_details,
    SessionPublishedV1: on_session_details,
    SessionRescheduledV1: on_session_change,
    SessionCapacityChangedV1: on_session_change,
    SessionEnrollmentClosedV1: on_session_change,
    SessionStartedV1: on_session_change,
    SessionCompletedV1: on_session_change,
    SessionCancelledV1: on_session_change,
}
