"""Registry use cases: each owns its transaction and writes its events to the outbox."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pycountry
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tpp_contracts.registry import OrganizerCreatedV1, SessionCreatedV1, SessionPublishedV1
from tpp_contracts.vocab import OrganizerKind, SessionStatus, TechnicalField
from tpp_plumbing.outbox import Outbox
from tpp_plumbing.problems import ConflictError, NotFoundError, ProblemError

from tpp_registry import tables
from tpp_registry.domain import InvalidTransitionError, transition


def _country(code: str) -> str:
    code = code.upper()
    if pycountry.countries.get(alpha_2=code) is None:
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return code


class OrganizerIn(BaseModel):
    """A new organizer."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=300)
    kind: OrganizerKind
    province: str | None = Field(None, max_length=200)
    country: str = Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2.")
    contact: str | None = Field(None, max_length=500)

    _check_country = field_validator("country")(_country)


class Organizer(OrganizerIn):
    """An organizer as stored."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID


class SessionIn(BaseModel):
    """A new training session (created as a draft)."""

    model_config = ConfigDict(extra="forbid")

    organizer_id: uuid.UUID
    title: str = Field(min_length=1, max_length=300)
    field: TechnicalField
    year: int = Field(ge=2000, le=2100)
    start_date: date
    end_date: date
    venue_city: str = Field(min_length=1, max_length=200)
    venue_country: str = Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2.")
    capacity: int = Field(ge=1, le=100_000)
    languages: list[str] = Field(min_length=1, max_length=20)
    description: str | None = Field(None, max_length=10_000)
    review_required: bool = False
    country_limit: int | None = Field(None, ge=1)

    _check_country = field_validator("venue_country")(_country)

    @model_validator(mode="after")
    def _consistent(self) -> SessionIn:
        if self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        if self.start_date.year != self.year:
            raise ValueError("year does not match start_date")
        return self


class Session(SessionIn):
    """A training session as stored."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    overseas: bool
    status: SessionStatus
    version: int


class RegistryService:
    """The registry's use cases."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], outbox: Outbox, home_country: str
    ) -> None:
        self._sessions = sessions
        self._outbox = outbox
        self._home = home_country

    async def create_organizer(self, data: OrganizerIn) -> Organizer:
        """Register an organizer."""
        organizer = Organizer(id=uuid.uuid4(), **data.model_dump())
        async with self._sessions() as db, db.begin():
            await db.execute(insert(tables.organizer).values(**organizer.model_dump()))
            await self._outbox.add(
                db,
                [
                    OrganizerCreatedV1(
                        organizer_id=organizer.id,
                        **data.model_dump(),
                    )
                ],
            )
        return organizer

    async def create_session(self, data: SessionIn) -> Session:
        """Create a draft session."""
        session = Session(
            id=uuid.uuid4(),
            overseas=data.venue_country != self._home,
            status=SessionStatus.DRAFT,
            version=1,
            **data.model_dump(),
        )
        async with self._sessions() as db, db.begin():
            known = await db.scalar(
                select(tables.organizer.c.id).where(tables.organizer.c.id == data.organizer_id)
            )
            if known is None:
                raise ProblemError(
                    "organizer_id names no organizer", status=422, field="organizer_id"
                )
            await db.execute(insert(tables.training_session).values(**_row(session)))
            await self._outbox.add(db, [SessionCreatedV1(**_details(session))])
        return session

    async def publish_session(self, session_id: uuid.UUID) -> Session:
        """Publish a draft: enrollment opens."""
        async with self._sessions() as db, db.begin():
            current = await self._lock(db, session_id)
            try:
                status = transition(current.status, "publish")
            except InvalidTransitionError as error:
                raise ConflictError(
                    str(error),
                    current_status=error.current.value,
                    allowed_transitions=error.allowed,
                ) from None
            published = current.model_copy(
                update={"status": status, "version": current.version + 1}
            )
            await db.execute(
                update(tables.training_session)
                .where(tables.training_session.c.id == session_id)
                .values(status=status.value, version=published.version)
            )
            await self._outbox.add(db, [SessionPublishedV1(**_details(published))])
        return published

    async def get_session(self, session_id: uuid.UUID) -> Session:
        """One session."""
        async with self._sessions() as db:
            row = (
                (
                    await db.execute(
                        select(tables.training_session).where(
                            tables.training_session.c.id == session_id
                        )
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            raise NotFoundError(f"no session {session_id}")
        return Session.model_validate(dict(row))

    async def _lock(self, db: AsyncSession, session_id: uuid.UUID) -> Session:
        # The row lock orders every change of one session, and so its events in the outbox.
        row = (
            (
                await db.execute(
                    select(tables.training_session)
                    .where(tables.training_session.c.id == session_id)
                    .with_for_update()
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise NotFoundError(f"no session {session_id}")
        return Session.model_validate(dict(row))


def _row(session: Session) -> dict[str, Any]:
    return session.model_dump(mode="python") | {
        "field": session.field.value,
        "status": session.status.value,
    }


def _details(session: Session) -> dict[str, Any]:
    data = session.model_dump(exclude={"id", "status"})
    return data | {"session_id": session.id}
