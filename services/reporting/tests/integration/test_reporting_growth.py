"""Year-over-year growth on real Kafka and PostgreSQL: each figure against the same figure of
the year before, for two years whose plans, sessions and trainees all differ."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from tpp_contracts.enrollment import (
    EnrollmentAcceptedV1,
    EnrollmentCompletedV1,
    EnrollmentWaitlistedV1,
    TraineeNoShowV1,
)
from tpp_contracts.envelope import Event, encode, wrap
from tpp_contracts.examples import example
from tpp_contracts.registry import (
    AnnualPlanSetV1,
    SessionCancelledV1,
    SessionCompletedV1,
    SessionCreatedV1,
    SessionPublishedV1,
)

from .reporting_support import fresh_year, ok

pytestmark = pytest.mark.integration

#: An enrollment's last event, by the status it leaves.
LAST_EVENT: dict[str, type[Event]] = {
    "completed": EnrollmentCompletedV1,
    "accepted": EnrollmentAcceptedV1,
    "no_show": TraineeNoShowV1,
    "waitlisted": EnrollmentWaitlistedV1,
}


@dataclass
class Year:
    """A program year's events, as the registry and enrollment services publish them."""

    year: int
    events: list[Event] = field(default_factory=list)

    def plan(self, planned: int) -> None:
        self.events.append(
            example(AnnualPlanSetV1, year=self.year, planned_sessions=planned, revision=1)
        )

    def session(self, status: str, *, overseas: bool = False) -> uuid.UUID:
        session_id = uuid.uuid4()
        details = {
            "session_id": session_id,
            "year": self.year,
            "overseas": overseas,
            "venue_country": "KE" if overseas else "CN",
            "version": 1,
        }
        if status == "draft":
            self.events.append(example(SessionCreatedV1, **details))
            return session_id
        self.events.append(example(SessionPublishedV1, **details))
        if status == "completed":
            self.events.append(example(SessionCompletedV1, session_id=session_id, version=2))
        elif status == "cancelled":
            self.events.append(example(SessionCancelledV1, session_id=session_id, version=2))
        return session_id

    def enrollment(self, session_id: uuid.UUID, country: str, status: str) -> None:
        self.events.append(
            example(
                LAST_EVENT[status],
                enrollment_id=uuid.uuid4(),
                session_id=session_id,
                trainee_id=uuid.uuid4(),
                country=country,
            )
        )


async def publish(kafka: Any, events: list[Event]) -> None:
    producer = AIOKafkaProducer(**kafka.client_options(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(
                kafka.topic(event.topic.name),
                key=event.key().encode(),
                value=encode(wrap(event, source="/tests")),
            )
    finally:
        await producer.stop()


FIGURES = (
    "sessions_planned",
    "sessions_published",
    "sessions_held",
    "sessions_cancelled",
    "sessions_overseas",
    "sessions_overseas_held",
    "sessions_overseas_cancelled",
    "trainees_enrolled",
    "trainees_accepted",
    "trainees_completed",
    "countries_reached",
)


async def test_every_growth_figure_compares_a_figure_with_the_same_one_a_year_before(
    platform: Any, eventually: Any
) -> None:
    this = fresh_year()  # the year before is reserved with it
    before, now = Year(this - 1), Year(this)
    # The year before, every figure of the sessions a different number: 7 planned; 5 held
    # (2 abroad), 4 cancelled (1 abroad), 1 draft.
    before.plan(7)
    c1, c2, c3, *_ = [before.session("completed", overseas=i < 2) for i in range(5)]
    for i in range(4):
        before.session("cancelled", overseas=i == 0)
    before.session("draft")
    for session_id, country, status in [
        (c1, "KE", "completed"),
        (c2, "KE", "completed"),
        (c3, "NG", "completed"),
        (c1, "KE", "accepted"),
        (c2, "KE", "no_show"),
        (c3, "GH", "waitlisted"),  # enrolled, not admitted: Ghana not reached
    ]:
        before.enrollment(session_id, country, status)
    # This year: 12 planned; 8 held (3 abroad), 2 cancelled (both abroad), 1 still open.
    now.plan(12)
    held = [now.session("completed", overseas=i < 3) for i in range(8)]
    now.session("cancelled", overseas=True)
    now.session("cancelled", overseas=True)
    now.session("published")
    for session_id, country, status in [
        (held[0], "KE", "completed"),
        (held[1], "NG", "completed"),
        (held[2], "BR", "completed"),
        (held[3], "KE", "completed"),
        (held[4], "KE", "accepted"),
        (held[4], "NG", "no_show"),
        (held[0], "GH", "waitlisted"),
        (held[1], "GH", "waitlisted"),
        (held[2], "GH", "waitlisted"),
    ]:
        now.enrollment(session_id, country, status)
    await publish(platform.kafka, before.events + now.events)

    figures = {
        before.year: dict(zip(FIGURES, (7, 9, 5, 4, 3, 2, 1, 6, 5, 3, 2), strict=True)),
        now.year: dict(zip(FIGURES, (12, 11, 8, 2, 5, 3, 2, 9, 6, 4, 3), strict=True)),
    }

    async def both_years() -> dict[str, Any] | None:
        trend = ok(
            await platform.reporting.http.get(f"/reports/years?from={before.year}&to={now.year}")
        )
        years = {y["year"]: y for y in trend["years"]}
        for year, wanted in figures.items():
            # A year shows in the trend once an event of it was applied.
            if year not in years or {k: years[year][k] for k in FIGURES} != wanted:
                return None
        this_year: dict[str, Any] = years[now.year]
        return this_year

    report = await eventually(both_years, within=30, what="both years' figures")
    assert report["growth"] == {
        "sessions_planned": 71.4,  # 7 -> 12
        "sessions_published": 22.2,  # 9 -> 11
        "sessions_held": 60.0,  # 5 -> 8 (not against the 7 planned: 14.3)
        "sessions_cancelled": -50.0,  # 4 -> 2
        "sessions_overseas": 66.7,  # 3 -> 5
        "sessions_overseas_held": 50.0,  # 2 -> 3
        "sessions_overseas_cancelled": 100.0,  # 1 -> 2
        "trainees_enrolled": 50.0,  # 6 -> 9
        "trainees_accepted": 20.0,  # 5 -> 6
        "trainees_completed": 33.3,  # 3 -> 4
        "countries_reached": 50.0,  # 2 -> 3
    }
    single = ok(await platform.reporting.http.get(f"/reports/years/{now.year}"))
    assert single["growth"] == report["growth"]
