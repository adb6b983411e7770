"""Request and response models of the registry's HTTP API (validated at the edge)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

import orjson
import pycountry
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from tpp_contracts.vocab import LanguageTag, OrganizerKind, SessionStatus, TechnicalField
from tpp_plumbing.web.limits import Text


def _country(code: str) -> str:
    code = code.upper()
    if pycountry.countries.get(alpha_2=code) is None:
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return code


def _currency(code: str) -> str:
    code = code.upper()
    if pycountry.currencies.get(alpha_3=code) is None:
        raise ValueError(f"{code!r} is not an ISO 4217 currency code")
    return code


Country = Annotated[
    str,
    Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2 code, e.g. 'KE'."),
    AfterValidator(_country),
]
Currency = Annotated[
    str,
    Field(min_length=3, max_length=3, description="ISO 4217 code, e.g. 'CNY'."),
    AfterValidator(_currency),
]
Title = Annotated[Text, Field(min_length=1, max_length=300)]
City = Annotated[Text, Field(min_length=1, max_length=200)]
Year = Annotated[int, Field(ge=2000, le=2100)]
Capacity = Annotated[int, Field(ge=1, le=100_000)]
Languages = Annotated[list[LanguageTag], Field(min_length=1, max_length=20)]

# --- organizers ------------------------------------------------------------------------------


class OrganizerIn(BaseModel):
    """A new organizer."""

    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=300, description="Unique, case-insensitive.")
    kind: OrganizerKind
    province: Text | None = Field(None, max_length=200)
    country: Country
    contact: Text | None = Field(None, max_length=500)


class OrganizerPatch(BaseModel):
    """Changes to an organizer: only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(None, min_length=1, max_length=300)
    kind: OrganizerKind | None = None
    province: Text | None = Field(None, max_length=200)
    country: Country | None = None
    contact: Text | None = Field(None, max_length=500)

    def changes(self) -> dict[str, object]:
        """The fields this patch sets (province and contact may be set to null)."""
        values = self.model_dump(exclude_unset=True)
        return {k: v for k, v in values.items() if v is not None or k in {"province", "contact"}}


class Organizer(OrganizerIn):
    """An organizer as stored."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID


class OrganizerPage(BaseModel):
    """A page of organizers, by name."""

    items: list[Organizer]
    next_offset: int | None = Field(description="Pass as ``offset`` for the next page.")


# --- sessions --------------------------------------------------------------------------------


class SessionIn(BaseModel):
    """A new training session (created as a draft)."""

    model_config = ConfigDict(extra="forbid")

    organizer_id: uuid.UUID
    title: Title
    field: TechnicalField
    year: Year = Field(description="The program year; the year of start_date.")
    start_date: date
    end_date: date
    venue_city: City
    venue_country: Country
    capacity: Capacity
    languages: Languages
    description: Text | None = Field(None, max_length=10_000)
    review_required: bool = Field(False, description="Enrollments wait for a review.")
    country_limit: int | None = Field(
        None, ge=1, le=100_000, description="Places per trainee country."
    )


class SessionPatch(BaseModel):
    """Changes to a session's details: only the fields given change.

    While draft anything may change; once published only dates (and year), venue and
    capacity. ``version`` may stand in for the If-Match header.
    """

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    field: TechnicalField | None = None
    year: Year | None = None
    start_date: date | None = None
    end_date: date | None = None
    venue_city: City | None = None
    venue_country: Country | None = None
    capacity: Capacity | None = None
    languages: Languages | None = None
    description: Text | None = Field(None, max_length=10_000)
    review_required: bool | None = None
    country_limit: int | None = Field(None, ge=1, le=100_000)
    version: int | None = Field(
        None, ge=1, le=2**31 - 1, description="The version the change is based on."
    )

    def changes(self) -> dict[str, object]:
        """The details this patch sets (description and country_limit may be set to null)."""
        values = self.model_dump(exclude_unset=True, exclude={"version"})
        nullable = {"description", "country_limit"}
        return {k: v for k, v in values.items() if v is not None or k in nullable}


class CancelIn(BaseModel):
    """Why a session is cancelled."""

    model_config = ConfigDict(extra="forbid")

    reason: Text = Field(min_length=1, max_length=2000)
    version: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Stands in for the If-Match header."
    )


class Session(SessionIn):
    """A training session as stored; its ETag is ``W/"<version>"``."""

    model_config = ConfigDict(extra="ignore", from_attributes=True)

    id: uuid.UUID
    overseas: bool = Field(description="Held outside the home country.")
    status: SessionStatus
    version: int


class SessionPage(BaseModel):
    """A page of sessions, by start date; follow ``next_cursor`` for the next one."""

    items: list[Session]
    next_cursor: str | None


class CatalogueEntry(BaseModel):
    """A published session as the public sees it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    description: str | None
    field: TechnicalField
    year: int
    start_date: date
    end_date: date
    venue_city: str
    venue_country: str
    overseas: bool
    capacity: int
    languages: list[str]
    organizer_id: uuid.UUID
    organizer_name: str


class CataloguePage(BaseModel):
    """A page of the public catalogue, by start date."""

    items: list[CatalogueEntry]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class RawPage:
    """A page of stored rows already shaped like a page model (SessionPage, CataloguePage).

    Rows were valid when written, so a read serves them without building models: the hot
    path of the lists and the public catalogue.
    """

    items: list[dict[str, Any]]
    next_cursor: str | None

    def json(self) -> bytes:
        """The page as JSON, as the page model would serialize it."""
        page = {"items": self.items, "next_cursor": self.next_cursor}
        # asyncpg's own UUID type is not uuid.UUID; its str() is the canonical form.
        return orjson.dumps(page, default=str)


# --- annual plans ----------------------------------------------------------------------------


class PlanIn(BaseModel):
    """A year's plan: the number of sessions, optionally a budget with its currency."""

    model_config = ConfigDict(extra="forbid")

    planned_sessions: int = Field(ge=0, le=100_000)
    planned_overseas_sessions: int | None = Field(None, ge=0, le=100_000)
    budget: Decimal | None = Field(None, ge=0, max_digits=16, decimal_places=2)
    currency: Currency | None = None
    note: Text | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _consistent(self) -> PlanIn:
        if (self.budget is None) != (self.currency is None):
            raise ValueError("budget and currency are given together or not at all")
        if (self.planned_overseas_sessions or 0) > self.planned_sessions:
            raise ValueError("planned_overseas_sessions exceeds planned_sessions")
        return self


class Plan(PlanIn):
    """A revision of a year's plan (the current one, or one from its history)."""

    model_config = ConfigDict(extra="ignore")

    year: int
    revision: int = Field(description="1 for the first plan of the year, then +1.")
    set_at: datetime


# --- bulk import -----------------------------------------------------------------------------


class RowOutcome(StrEnum):
    """What happened to one row of an import."""

    CREATED = "created"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class ImportRow(BaseModel):
    """The outcome of one CSV row (``row`` is its line number; the header is line 1)."""

    row: int
    outcome: RowOutcome
    session_id: uuid.UUID | None = None
    field: str | None = None
    reason: str | None = None


class ImportReport(BaseModel):
    """What an import created, what it had already created, and what it rejected and why."""

    year: int | None
    created: int
    duplicates: int
    rejected: int
    rows: list[ImportRow]
