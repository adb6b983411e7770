"""The reports' JSON shapes (every report carries its freshness)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, Field, PrivateAttr, model_validator
from tpp_contracts.vocab import TechnicalField
from tpp_plumbing.web.limits import Text

from tpp_reporting.freshness import Freshness

Metric = Literal[
    "trainees_completed",
    "trainees_accepted",
    "trainees_enrolled",
    "places_given",
    "places_offered",
    "sessions_held",
]
#: What each metric counts, for the OpenAPI document (a commitment names one).
METRICS: dict[str, str] = {
    "trainees_completed": "people trained: distinct trainees who completed a session, per"
    " year of the period (e.g. 500,000 technicians trained)",
    "trainees_accepted": "people admitted: distinct trainees given a place, per year",
    "trainees_enrolled": "people who applied: distinct trainees with an enrollment, per year",
    "places_given": "training opportunities taken up: places given (accepted, attended,"
    " completed or no-show), one per trainee and session, so a person in two sessions counts"
    " twice (e.g. 120,000 training opportunities). The platform records no funding per"
    " place: a scholarship commitment (e.g. 150,000 scholarships) counts the places given"
    " in the sessions the program funds, i.e. this metric, optionally narrowed by field"
    " or region",
    "places_offered": "training opportunities offered: the capacity of the period's sessions"
    " that were published and not cancelled (the region filters their venue)",
    "sessions_held": "sessions completed (the region filters their venue)",
}
_METRIC = "What the commitment counts:\n" + "\n".join(
    f"- `{name}`: {meaning}." for name, meaning in METRICS.items()
)
Dimension = Literal["country", "region", "field", "organizer", "profession", "gender"]

_GROWTH = (
    "Percentage change of each figure against the year before, one decimal; null (n/a) when"
    " the year before had zero."
)


class Report(BaseModel):
    """Base of every report: how fresh it is."""

    freshness: Freshness | None = Field(
        default=None, description="Data as of the newest event applied; consumer lag."
    )
    # The report's JSON without its freshness, serialized once when it is computed.
    _body: bytes | None = PrivateAttr(default=None)

    def serialized(self) -> bytes:
        """The JSON document, reusing the body serialized when the report was computed."""
        body = self._body
        if body is None or self.freshness is None or len(body) < 3:
            return self.model_dump_json().encode()
        return b'{"freshness":' + self.freshness.model_dump_json().encode() + b"," + body[1:]

    def changed(self, **update: object) -> Self:
        """A copy with fields replaced (serialized afresh: the kept body is dropped)."""
        copy = self.model_copy(update=update)
        copy._body = None
        return copy

    def keep_body(self) -> None:
        """Serialize the report (without freshness) once, for ``serialized``."""
        self._body = self.model_dump_json(exclude={"freshness"}).encode()


class YearFigures(BaseModel):
    """Figures of one program year."""

    year: int
    sessions_planned: int | None = Field(description="From the year's latest annual plan.")
    sessions_planned_overseas: int | None = Field(
        description="Overseas sessions in the year's latest annual plan."
    )
    sessions: int = Field(description="Sessions in the year, drafts included.")
    sessions_published: int = Field(description="Sessions past draft (published or later).")
    sessions_held: int = Field(description="Sessions completed.")
    sessions_completed: int = Field(description="The same as sessions_held.")
    sessions_cancelled: int = Field(description="Sessions cancelled.")
    sessions_overseas: int = Field(
        description="Overseas sessions past draft (published or later, cancelled ones"
        " included, as sessions_published): scheduled, not necessarily held. Held and"
        " cancelled ones are sessions_overseas_held and sessions_overseas_cancelled."
    )
    sessions_overseas_held: int = Field(description="Overseas sessions completed.")
    sessions_overseas_cancelled: int = Field(description="Overseas sessions cancelled.")
    enrollments: int = Field(description="Applications, one per trainee and session.")
    trainees_enrolled: int = Field(description="Distinct trainees who applied.")
    trainees_accepted: int = Field(description="Distinct trainees given a place.")
    trainees_completed: int = Field(description="Distinct trainees who completed a session.")
    countries_reached: int = Field(description="Countries of trainees given a place.")
    growth: dict[str, float | None] = Field(description=_GROWTH)


class YearReport(YearFigures, Report):
    """A program year's figures."""


class YearsReport(Report):
    """The figures of a run of years (the trend)."""

    years: list[YearFigures] = Field(
        description="Years with a plan or a session, in order; a year with neither is left out."
    )


class BreakdownRow(BaseModel):
    """A year's figures for one value of a dimension."""

    key: str
    label: str
    region: str | None = Field(default=None, description="UN M49 region (country rows).")
    sessions: int | None = None
    sessions_held: int | None = None
    sessions_cancelled: int | None = None
    enrollments: int
    trainees_enrolled: int
    trainees_accepted: int
    trainees_completed: int
    countries_reached: int


class BreakdownReport(Report):
    """A year's figures broken down by one dimension."""

    year: int
    by: str
    rows: list[BreakdownRow]


class SessionFigures(BaseModel):
    """Figures of one session."""

    session_id: uuid.UUID
    title: str | None = None
    year: int | None = None
    field: str | None = None
    organizer_id: uuid.UUID | None = None
    organizer: str | None = None
    venue_country: str | None = None
    overseas: bool | None = None
    status: str | None = None
    capacity: int | None = None
    enrolled: int
    accepted: int
    waitlisted: int
    waitlist_length: int
    completed: int
    no_show: int
    fill_rate: float | None = Field(default=None, description="Places given / capacity.")
    completion_rate: float | None = Field(default=None, description="Completed / given a place.")
    no_show_rate: float | None = Field(default=None, description="No-shows / given a place.")
    evaluation_average: float | None = None
    evaluations: int = 0


class SessionReport(SessionFigures, Report):
    """One session's figures."""


class SessionsReport(Report):
    """Per-session figures."""

    rows: list[SessionFigures]


class OutcomeRow(BaseModel):
    """How often a follow-up found an outcome."""

    outcome: str
    follow_ups: int
    trainees: int


class FollowUpReport(Report):
    """Follow-up coverage of a year's completed trainees and the outcomes found."""

    year: int
    trainees_completed: int = Field(description="Completed enrollments of the year.")
    trainees_followed_up: int = Field(description="Of those, with at least one follow-up.")
    coverage: float | None
    outcomes: list[OutcomeRow]


class CommitmentIn(BaseModel):
    """A multi-year target, e.g. 500,000 technicians trained 2016-2020."""

    name: Text = Field(min_length=1, max_length=300)
    metric: Metric = Field(default="trainees_completed", description=_METRIC)
    target: int = Field(ge=1, le=1_000_000_000)
    start_year: int = Field(ge=2000, le=2100)
    end_year: int = Field(ge=2000, le=2100)
    field: TechnicalField | None = Field(default=None, description="Only sessions of a field.")
    region: Text | None = Field(
        default=None,
        max_length=100,
        description="Only trainees (or venues) in a UN M49 region or sub-region.",
    )

    @model_validator(mode="after")
    def _years_in_order(self) -> CommitmentIn:
        if self.end_year < self.start_year:
            raise ValueError("end_year is before start_year")
        return self


class Commitment(CommitmentIn):
    """A configured commitment."""

    commitment_id: uuid.UUID
    created_at: datetime


class CommitmentProgress(Commitment, Report):
    """A commitment and where it stands."""

    achieved: int = Field(description="What the metric counts over the period (see metric).")
    share_achieved: float = Field(
        description="Fraction of the target achieved (achieved / target): 0 to 1, above 1"
        " once exceeded; not a percent. Four significant digits, so that small progress"
        " shows (20 of 500,000 is 0.00004)."
    )
    share_of_time_elapsed: float = Field(
        description="Fraction of the period elapsed: 0 to 1, three decimals; not a percent."
    )
    remaining: int
    years_left: int
    yearly_pace_needed: float | None = Field(
        description="What each remaining year must add to meet the target (null once over)."
    )
    on_track: bool
    by_year: dict[int, int]


class CommitmentList(Report):
    """Every commitment with its progress."""

    items: list[CommitmentProgress]


class OrganizerFigures(BaseModel):
    """An organizer's figures in a year."""

    organizer_id: str
    name: str
    sessions: int
    sessions_held: int
    trainees_accepted: int
    trainees_completed: int
    countries_reached: int


class NextYearPlan(BaseModel):
    """Next year's plan and its growth against this year's sessions held."""

    year: int
    sessions_planned: int | None
    sessions_planned_overseas: int | None
    growth_vs_held: float | None


class AnnualReview(Report):
    """A year's review as the center presents it."""

    year: int
    figures: YearFigures
    countries: list[BreakdownRow]
    regions: list[str]
    fields_covered: list[str]
    organizers: list[OrganizerFigures]
    evaluation_average: float | None
    evaluations: int
    follow_up_coverage: float | None
    next_year: NextYearPlan
    commitments: list[CommitmentProgress] = Field(default_factory=list)
