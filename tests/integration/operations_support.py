"""Helpers of the operations tests: event factories, topics of their own, a scratch projection."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from tpp_contracts.enrollment import EnrollmentAcceptedV1
from tpp_contracts.envelope import Envelope
from tpp_contracts.registry import SessionCreatedV1
from tpp_plumbing.db.engine import asyncpg_dsn, create_engine, new_metadata, session_factory
from tpp_plumbing.messaging.consumer import EventConsumer
from tpp_plumbing.messaging.deadletter import SUFFIX, DeadLetterSink
from tpp_plumbing.messaging.inbox import Inbox, inbox_table
from tpp_plumbing.messaging.retry import RetryPolicy
from tpp_plumbing.messaging.runner import ConsumerRunner
from tpp_plumbing.observability.metrics import Metrics
from tpp_plumbing.settings import KafkaSettings
from tpp_testkit import Infrastructure


def accepted(session_id: uuid.UUID) -> EnrollmentAcceptedV1:
    """An acceptance of a new trainee in a session."""
    return EnrollmentAcceptedV1(
        enrollment_id=uuid.uuid4(),
        session_id=session_id,
        trainee_id=uuid.uuid4(),
        country="KE",
        gender="female",
        profession="scholar",
        previous_status=None,
    )


# Other platform tests count random years in 2001-2099 and assert those years' totals: the
# sessions of the operations tests all fall in 2100, which none of them picks.
OPS_YEAR = 2100


def created(session_id: uuid.UUID, year: int = OPS_YEAR) -> SessionCreatedV1:
    """A draft session's creation."""
    return SessionCreatedV1(
        session_id=session_id,
        version=1,
        organizer_id=uuid.uuid4(),
        title="Solar micro-grids",
        field="new_energy",
        year=year,
        start_date=date(year, 5, 4),
        end_date=date(year, 5, 22),
        venue_city="Lanzhou",
        venue_country="CN",
        overseas=False,
        capacity=30,
        languages=["en"],
        description=None,
        review_required=False,
        country_limit=None,
    )


async def produce(
    kafka: KafkaSettings,
    topic: str,
    messages: list[tuple[bytes, bytes]],
    *,
    partition: int | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """Send (key, value) messages in order and wait for the broker's acks."""
    producer = AIOKafkaProducer(
        **kafka.client_options(), acks="all", enable_idempotence=True, max_request_size=2**21
    )
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(
                topic, value=value, key=key, partition=partition, headers=headers
            )
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def own_topics(
    infrastructure: Infrastructure, *names: str, partitions: int = 3
) -> AsyncIterator[str]:
    """Topics (and their ``.dlq`` twins) under a fresh prefix, which each Kafka principal may
    use as on the stack; yields the prefix."""
    prefix = f"ops{uuid.uuid4().hex[:8]}."
    admin = AIOKafkaAdminClient(**infrastructure.kafka.client_options())
    await admin.start()
    full = [prefix + name + suffix for name in names for suffix in ("", SUFFIX)]
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in full])
        await infrastructure.grant(prefix)
        yield prefix
    finally:
        await infrastructure.revoke(prefix)
        await admin.delete_topics(full)
        await admin.close()


async def inbox_has(url: str, event_id: uuid.UUID) -> bool:
    """Whether a service's inbox recorded the event (it is applied in that transaction)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        found: bool = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM inbox_message WHERE event_id = $1)", event_id
        )
    finally:
        await conn.close()
    return found


@dataclass
class Scratch:
    """A projection of our own: one row per application of an event, in a throwaway database.

    ``failures`` says how many more times the handler fails for an event id (``-1``: always).
    """

    engine: AsyncEngine
    failures: dict[uuid.UUID, int] = field(default_factory=dict)
    calls: dict[uuid.UUID, int] = field(default_factory=dict)

    async def handle(self, session: AsyncSession, _: Any, envelope: Envelope) -> None:
        self.calls[envelope.id] = self.calls.get(envelope.id, 0) + 1
        left = self.failures.get(envelope.id, 0)
        if left:
            self.failures[envelope.id] = left - 1 if left > 0 else left
            raise RuntimeError(f"transient failure for {envelope.id}")
        await session.execute(
            text("INSERT INTO ops_applied (event_id) VALUES (:id)"), {"id": envelope.id}
        )

    async def applied(self, event_id: uuid.UUID) -> int:
        """How many times the event changed the projection."""
        async with self.engine.connect() as conn:
            count = await conn.scalar(
                text("SELECT count(*) FROM ops_applied WHERE event_id = :id"), {"id": event_id}
            )
        return int(count or 0)

    def consumer(self) -> EventConsumer:
        return EventConsumer(
            name="ops-scratch",
            sessions=session_factory(self.engine),
            inbox=Inbox(inbox_table(new_metadata())),
            handlers={SessionCreatedV1: self.handle, EnrollmentAcceptedV1: self.handle},
        )


@contextlib.asynccontextmanager
async def scratch(create_database: Callable[..., Awaitable[str]]) -> AsyncIterator[Scratch]:
    """A Scratch projection on a new reporting database (which has an inbox table)."""
    url = await create_database("reporting", f"_ops{uuid.uuid4().hex[:6]}")
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TABLE ops_applied (event_id uuid NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
        )
    try:
        yield Scratch(engine)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def running(
    consumer: EventConsumer,
    *,
    kafka: KafkaSettings,
    topics: list[str],
    group: str,
    batch: bool = False,
    retry: RetryPolicy | None = None,
    concurrency: int = 4,
) -> AsyncIterator[tuple[ConsumerRunner, Metrics]]:
    """A started runner for a scratch consumer, with metrics of its own; stopped on exit."""
    metrics = Metrics("ops-test")
    consumer.bind(group=group, service="ops-test", metrics=metrics)
    sink = DeadLetterSink(kafka)
    runner = ConsumerRunner(
        consumer,
        topics=topics,
        group_id=group,
        kafka=kafka,
        sink=sink,
        batch=batch,
        retry=retry,
        metrics=metrics,
        concurrency=concurrency,
    )
    await runner.start()
    try:
        yield runner, metrics
    finally:
        await runner.stop(grace_s=5)
        await sink.close()


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    """The value of one metric sample (0 when absent)."""
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


@dataclass
class Journey:
    """One enrollment from the click to the dashboard, and the personal data it carried."""

    session_id: str
    trainee_id: str
    enrollment_id: str
    personal: dict[str, str]


async def enroll_journey(
    platform: Any,
    eventually: Any,
    *,
    publish_headers: dict[str, str] | None = None,
    enroll_headers: dict[str, str] | None = None,
) -> Journey:
    """Organizer, session, publish; a trainee enrolls; reporting counts the enrollment.

    The headers go with the publish and the enroll requests (e.g. a sampled ``traceparent``).
    """
    year = OPS_YEAR
    organizer = await platform.registry.http.post(
        "/organizers",
        json={
            "name": f"Ops Institute {uuid.uuid4().hex[:6]}",
            "kind": "university",
            "country": "CN",
        },
    )
    assert organizer.status_code == 201, organizer.text
    session = await platform.registry.http.post(
        "/sessions",
        json={
            "organizer_id": organizer.json()["id"],
            "title": "Drip irrigation",
            "field": "agriculture_forestry",
            "year": year,
            "start_date": f"{year}-06-01",
            "end_date": f"{year}-06-20",
            "venue_city": "Yangling",
            "venue_country": "CN",
            "capacity": 10,
            "languages": ["en"],
        },
    )
    assert session.status_code == 201, session.text
    session_id = session.json()["id"]
    published = await platform.registry.http.post(
        f"/sessions/{session_id}/publish", headers=publish_headers
    )
    assert published.status_code == 200, published.text

    async def open_for_enrollment() -> bool:
        view = await platform.enrollment.http.get(f"/sessions/{session_id}")
        return bool(view.status_code == 200 and view.json()["status"] == "published")

    await eventually(open_for_enrollment, what="the enrollment service sees the session open")
    marker = uuid.uuid4().hex[:8]
    personal = {
        "full_name": f"Wanjiru Personal{marker}",
        "email": f"wanjiru.{marker}@example.org",
        "passport_number": f"P{marker.upper()}",
        "birth_date": "1987-11-23",
    }
    trainee = await platform.enrollment.http.post(
        "/trainees",
        json={
            **personal,
            "country": "KE",
            "gender": "female",
            "profession": "technical_professional",
            "organization": "Kenya Power",
        },
    )
    assert trainee.status_code == 201, trainee.text
    enrolled = await platform.enrollment.http.post(
        f"/sessions/{session_id}/enrollments",
        json={"trainee_id": trainee.json()["id"]},
        headers=enroll_headers,
    )
    assert enrolled.status_code == 201, enrolled.text

    async def counted() -> bool:
        report = await platform.reporting.http.get(f"/reports/sessions/{session_id}")
        return bool(report.status_code == 200 and report.json()["enrolled"] == 1)

    await eventually(counted, what="reporting counts the enrollment")
    return Journey(session_id, trainee.json()["id"], enrolled.json()["id"], personal)
