"""Registry events on the real Kafka drive the session view; no personal data goes out."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from tpp_contracts.enrollment import EnrollmentCancelledV1
from tpp_contracts.envelope import Event, decode, encode, wrap
from tpp_contracts.registry import (
    SessionCancelledV1,
    SessionCapacityChangedV1,
    SessionEnrollmentClosedV1,
    SessionPublishedV1,
    SessionVenueChangedV1,
)
from tpp_contracts.topics import ENROLLMENTS, SESSIONS, TRAINEES

from .enrollment_support import trainee_body

pytestmark = pytest.mark.integration


def published(session_id: uuid.UUID, capacity: int) -> SessionPublishedV1:
    return SessionPublishedV1(
        session_id=session_id,
        version=1,
        organizer_id=uuid.uuid4(),
        title="Smart grids",
        field="new_energy",
        year=2032,
        start_date=date(2032, 6, 1),
        end_date=date(2032, 6, 20),
        venue_city="Hangzhou",
        venue_country="CN",
        overseas=False,
        capacity=capacity,
        languages=["en"],
        description=None,
        review_required=False,
        country_limit=None,
    )


def capacity_changed(
    session_id: uuid.UUID, version: int, capacity: int, previous: int
) -> SessionCapacityChangedV1:
    return SessionCapacityChangedV1(
        session_id=session_id,
        version=version,
        capacity=capacity,
        previous_capacity=previous,
        status="published",
    )


def venue_changed(
    session_id: uuid.UUID, version: int, city: str, country: str
) -> SessionVenueChangedV1:
    return SessionVenueChangedV1(
        session_id=session_id,
        version=version,
        venue_city=city,
        venue_country=country,
        overseas=True,
        status="published",
    )


async def session_view(http: Any, session_id: uuid.UUID, check: Any, eventually: Any) -> Any:
    """The service's view of the session, once ``check`` holds for it."""

    async def poll() -> dict[str, Any] | None:
        response = await http.get(f"/sessions/{session_id}")
        return response.json() if response.status_code == 200 and check(response.json()) else None

    return await eventually(poll, what="session view")


async def send(platform: Any, *events: Event | tuple[Event, bytes]) -> None:
    """Publish registry events; an (event, bytes) pair sends those exact bytes (a redelivery)."""
    producer = AIOKafkaProducer(
        **platform.kafka.client_options(), acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for item in events:
            event, value = item if isinstance(item, tuple) else (item, registry_message(item))
            await producer.send_and_wait(
                platform.kafka.topic(SESSIONS.name), value=value, key=event.key().encode()
            )
    finally:
        await producer.stop()


def registry_message(event: Event) -> bytes:
    return encode(wrap(event, source="/tests/registry"))


async def read_all(platform: Any, topics: list[str], until: Any, within: float = 20) -> list[Any]:
    consumer = AIOKafkaConsumer(
        *[platform.kafka.topic(t) for t in topics],
        **platform.kafka.client_options(),
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    records: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline and not until(records):
            for part in (await consumer.getmany(timeout_ms=300)).values():
                records.extend(part)
    finally:
        await consumer.stop()
    return records


async def test_session_events_drive_the_view_promotions_and_cancellations_without_personal_data(
    platform: Any, eventually: Any
) -> None:
    http = platform.enrollment.http
    session_id = uuid.uuid4()
    await send(platform, published(session_id, capacity=1))

    def view(check: Any) -> Any:
        return session_view(http, session_id, check, eventually)

    await view(lambda v: v["status"] == "published")
    canary_name, canary_passport = "Zorblax Canarywing", f"CANARY{uuid.uuid4().hex[:8].upper()}"
    canary = (
        await http.post(
            "/trainees",
            json=trainee_body(
                full_name=canary_name, passport_number=canary_passport, email="zorblax@example.org"
            ),
        )
    ).json()
    other = (await http.post("/trainees", json=trainee_body(country="GH"))).json()
    first = (
        await http.post(f"/sessions/{session_id}/enrollments", json={"trainee_id": canary["id"]})
    ).json()
    second = (
        await http.post(f"/sessions/{session_id}/enrollments", json={"trainee_id": other["id"]})
    ).json()
    assert (first["status"], second["status"]) == ("accepted", "waitlisted")

    raised = capacity_changed(session_id, 2, capacity=2, previous=1)
    moved = venue_changed(session_id, 3, "Nairobi", "KE")
    await send(platform, raised, moved)
    await view(lambda v: v["capacity"] == 2 and v["venue_city"] == "Nairobi")

    async def promoted() -> bool:
        response = await http.get(f"/enrollments/{second['id']}")
        return bool(response.json()["status"] == "accepted")

    await eventually(promoted, what="the raised capacity admits the waitlisted trainee")

    cancelled = SessionCancelledV1(
        session_id=session_id, version=4, reason="flooding", previous_status="published"
    )
    await send(platform, cancelled)

    async def all_cancelled() -> bool:
        response = await http.get(f"/sessions/{session_id}/enrollments")
        return [e["status"] for e in response.json()] == ["cancelled", "cancelled"]

    await eventually(all_cancelled, what="the session's enrollments cancelled")
    view_now = await view(lambda v: v["status"] == "cancelled")
    assert view_now["accepted"] == 0
    refused = await http.post(
        f"/sessions/{session_id}/enrollments",
        json={"trainee_id": (await http.post("/trainees", json=trainee_body())).json()["id"]},
    )
    assert refused.status_code == 409

    def ours(records: list[Any]) -> list[Any]:
        return [r for r in records if r.key == str(session_id).encode()]

    def complete(records: list[Any]) -> bool:
        types = [decode(r.value).envelope.type.split(".")[-2] for r in ours(records)]
        return types.count("cancelled") == 2

    records = await read_all(platform, [ENROLLMENTS.name, TRAINEES.name], complete)
    events = [decode(r.value) for r in ours(records)]
    kinds = [e.envelope.type.split(".")[-2] for e in events]
    assert kinds == ["accepted", "waitlisted", "accepted", "cancelled", "cancelled"]
    assert events[2].event.promoted_from_waitlist  # type: ignore[union-attr]
    assert all(e.envelope.causationid is not None for e in events[2:])
    for record in records:
        raw = record.value.decode()
        for secret in (canary_name, canary_passport, "zorblax", "1988-03-14"):
            assert secret.lower() not in raw.lower()
    registered = [
        r
        for r in records
        if str(canary["id"]) in r.value.decode() and r.topic.endswith(TRAINEES.name)
    ]
    assert registered  # the canary's registration was published, without the canary


async def test_redelivered_and_stale_registry_events_change_nothing_and_closing_stops_intake(
    platform: Any, eventually: Any
) -> None:
    http = platform.enrollment.http
    session_id = uuid.uuid4()
    await send(platform, published(session_id, capacity=2))

    def view(check: Any) -> Any:
        return session_view(http, session_id, check, eventually)

    async def enroll() -> dict[str, Any]:
        trainee = (await http.post("/trainees", json=trainee_body())).json()
        response = await http.post(
            f"/sessions/{session_id}/enrollments", json={"trainee_id": trainee["id"]}
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def statuses() -> list[str]:
        response = await http.get(f"/sessions/{session_id}/enrollments")
        return [e["status"] for e in response.json()]

    await view(lambda v: v["status"] == "published")
    first, second, third = [await enroll() for _ in range(3)]
    assert [e["status"] for e in (first, second, third)] == ["accepted", "accepted", "waitlisted"]

    # A raise delivered twice (the same message) admits the waitlisted trainee once; an older
    # version arriving late (another message) changes nothing.
    raised = capacity_changed(session_id, 2, capacity=3, previous=2)
    message = registry_message(raised)
    stale = capacity_changed(session_id, 2, capacity=9, previous=2)
    # The venue change after them shows when they were all consumed (one partition: in order).
    marker = venue_changed(session_id, 3, "Accra", "GH")
    await send(platform, (raised, message), (raised, message), stale, marker)
    state = await view(lambda v: v["venue_city"] == "Accra")
    assert (state["capacity"], state["version"]) == (3, 3)

    async def admitted() -> bool:
        return await statuses() == ["accepted", "accepted", "accepted"]

    await eventually(admitted, what="the waitlisted trainee admitted")

    # Lowered below the places taken: nobody is bumped, and a freed place admits no one.
    lowered = capacity_changed(session_id, 4, capacity=1, previous=3)
    await send(platform, lowered)
    await view(lambda v: v["capacity"] == 1)
    waiting = await enroll()
    assert waiting["status"] == "waitlisted"
    left = await http.post(f"/enrollments/{first['id']}/withdraw")
    assert left.json()["status"] == "withdrawn"
    assert await statuses() == ["withdrawn", "accepted", "accepted", "waitlisted"]
    assert (await http.get(f"/sessions/{session_id}")).json()["accepted"] == 2

    # Enrollment closed: no new enrollment, with the reason.
    await send(platform, SessionEnrollmentClosedV1(session_id=session_id, version=5))
    await view(lambda v: v["status"] == "enrollment_closed")
    trainee = (await http.post("/trainees", json=trainee_body())).json()
    refused = await http.post(
        f"/sessions/{session_id}/enrollments", json={"trainee_id": trainee["id"]}
    )
    assert refused.status_code == 409
    assert "enrollment_closed" in refused.json()["detail"]

    # What went out: one promotion for the raise, delivered twice; one event a step.
    def ours(records: list[Any]) -> list[Any]:
        return [r for r in records if r.key == str(session_id).encode()]

    def complete(records: list[Any]) -> bool:
        return len(ours(records)) >= 6

    records = ours(await read_all(platform, [ENROLLMENTS.name], complete))
    kinds = [decode(r.value).envelope.type.split(".")[-2] for r in records]
    assert kinds == ["accepted", "accepted", "waitlisted", "accepted", "waitlisted", "withdrawn"]


async def test_a_cancelled_session_cancels_accepted_waitlisted_and_submitted_enrollments(
    platform: Any, eventually: Any
) -> None:
    http = platform.enrollment.http
    session_id = uuid.uuid4()
    await send(
        platform, published(session_id, capacity=2).model_copy(update={"review_required": True})
    )
    await session_view(http, session_id, lambda v: v["status"] == "published", eventually)
    enrollments = []
    for _ in range(3):
        trainee = (await http.post("/trainees", json=trainee_body())).json()
        response = await http.post(
            f"/sessions/{session_id}/enrollments", json={"trainee_id": trainee["id"]}
        )
        assert response.json()["status"] == "submitted", response.text
        enrollments.append(response.json()["id"])
    accepted, waitlisted, submitted = enrollments
    assert (await http.post(f"/enrollments/{accepted}/accept")).json()["status"] == "accepted"
    assert (await http.post(f"/enrollments/{waitlisted}/waitlist")).json()["status"] == "waitlisted"

    cancelled = SessionCancelledV1(
        session_id=session_id, version=2, reason="typhoon", previous_status="published"
    )
    await send(platform, cancelled)

    async def all_cancelled() -> list[str] | None:
        response = await http.get(f"/sessions/{session_id}/enrollments")
        statuses = [e["status"] for e in response.json()]
        return statuses if statuses == ["cancelled"] * 3 else None

    await eventually(all_cancelled, what="every enrollment of the session cancelled")
    assert (await http.get(f"/sessions/{session_id}")).json()["accepted"] == 0

    def cancellations(records: list[Any]) -> list[EnrollmentCancelledV1]:
        ours = [decode(r.value).event for r in records if r.key == str(session_id).encode()]
        return [e for e in ours if isinstance(e, EnrollmentCancelledV1)]

    records = await read_all(platform, [ENROLLMENTS.name], lambda r: len(cancellations(r)) >= 3)
    sent = cancellations(records)
    assert len(sent) == 3
    assert {str(e.enrollment_id): (e.previous_status, e.reason) for e in sent} == {
        accepted: ("accepted", "session_cancelled"),
        waitlisted: ("waitlisted", "session_cancelled"),
        submitted: ("submitted", "session_cancelled"),
    }
