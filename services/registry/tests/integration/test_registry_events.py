"""Every registry change is an event on the real Kafka topics, in order, with what it needs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from tpp_contracts.envelope import decode
from tpp_contracts.topics import ORGANIZERS, PLANS, SESSIONS
from tpp_plumbing.settings import KafkaSettings
from tpp_testkit import fresh_year

pytestmark = pytest.mark.integration


async def events_for(
    kafka: KafkaSettings, topic: str, key: str, *, at_least: int, within_s: float = 20.0
) -> list[Any]:
    """The decoded events of one key on a topic, from the beginning, once ``at_least`` arrived."""
    consumer = AIOKafkaConsumer(
        topic, **kafka.client_options(), group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while loop.time() < deadline and len(found) < at_least:
            for part in (await consumer.getmany(timeout_ms=300)).values():
                found += [decode(r.value) for r in part if r.key == key.encode()]
    finally:
        await consumer.stop()
    return found


async def test_a_year_run_through_the_api_is_a_stream_of_events_on_kafka(
    platform: Any, organizer_body: Any, session_body: Any
) -> None:
    http = platform.registry.http
    year = fresh_year(neighbours=False)  # reporting counts it too: no other test may use it
    organizer = (await http.post("/organizers", json=organizer_body())).json()
    renamed = await http.patch(
        f"/organizers/{organizer['id']}", json={"name": f"{organizer['name']} (renamed)"}
    )
    assert renamed.status_code == 200
    assert (await http.put(f"/plans/{year}", json={"planned_sessions": 2})).status_code == 200
    held = (await http.post("/sessions", json=session_body(organizer["id"], year))).json()
    dropped = (await http.post("/sessions", json=session_body(organizer["id"], year))).json()
    sid = held["id"]
    for step in ("publish", "close-enrollment"):
        assert (await http.post(f"/sessions/{sid}/{step}")).status_code == 200
    resized = await http.patch(f"/sessions/{sid}", json={"capacity": 40}, headers={"If-Match": "3"})
    assert resized.status_code == 200, resized.text
    for step in ("start", "complete"):
        assert (await http.post(f"/sessions/{sid}/{step}")).status_code == 200
    cancelled = await http.post(f"/sessions/{dropped['id']}/cancel", json={"reason": "no venue"})
    assert cancelled.status_code == 200

    kafka, topic = platform.kafka, platform.kafka.topic
    session_events = await events_for(kafka, topic(SESSIONS.name), sid, at_least=6)
    assert [e.envelope.type.split(".")[-2] for e in session_events] == [
        "created",
        "published",
        "enrollment_closed",
        "capacity_changed",
        "started",
        "completed",
    ]
    assert [e.event.version for e in session_events] == [1, 2, 3, 4, 5, 6]
    published = session_events[1].event
    assert (published.title, published.capacity, published.year) == (held["title"], 30, year)
    assert session_events[3].event.capacity == 40

    [*_, cancel] = await events_for(kafka, topic(SESSIONS.name), dropped["id"], at_least=2)
    assert (cancel.event.reason, cancel.event.previous_status) == ("no venue", "draft")

    organizer_events = await events_for(kafka, topic(ORGANIZERS.name), organizer["id"], at_least=2)
    assert [e.event.name for e in organizer_events][-1].endswith("(renamed)")
    plans = await events_for(kafka, topic(PLANS.name), str(year), at_least=1)
    assert plans[-1].event.planned_sessions == 2
