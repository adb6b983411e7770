"""Registry events on the real Kafka drive the session view; no personal data goes out."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from tpp_contracts.envelope import Event, decode, encode, wrap
from tpp_contracts.registry import (
    SessionCancelledV1,
    SessionCapacityChangedV1,
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


async def send(platform: Any, *events: Event) -> None:
    producer = AIOKafkaProducer(
        **platform.kafka.client_options(), acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(
                platform.kafka.topic(SESSIONS.name),
                value=encode(wrap(event, source="/tests/registry")),
                key=event.key().encode(),
            )
    finally:
        await producer.stop()


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

    async def view(check: Any) -> Any:
        async def poll() -> dict[str, Any] | None:
            response = await http.get(f"/sessions/{session_id}")
            return (
                response.json() if response.status_code == 200 and check(response.json()) else None
            )

        return await eventually(poll, what="session view")

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

    raised = SessionCapacityChangedV1(
        session_id=session_id, version=2, capacity=2, previous_capacity=1, status="published"
    )
    moved = SessionVenueChangedV1(
        session_id=session_id,
        version=3,
        venue_city="Nairobi",
        venue_country="KE",
        overseas=True,
        status="published",
    )
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
