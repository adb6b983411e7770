"""Nothing lost, nothing counted twice: duplicates, relay crashes, poison messages, order."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from tpp_contracts.enrollment import EnrollmentAcceptedV1, EnrollmentWithdrawnV1
from tpp_contracts.envelope import PoisonMessageError, decode, encode, wrap
from tpp_contracts.registry import SessionCreatedV1
from tpp_contracts.topics import ENROLLMENTS, SESSIONS
from tpp_enrollment.store import tables as enrollment_tables
from tpp_plumbing.db.engine import asyncpg_dsn, create_engine, session_factory
from tpp_plumbing.messaging.outbox import Outbox
from tpp_plumbing.messaging.relay import OutboxRelay
from tpp_plumbing.settings import KafkaSettings
from tpp_testkit import (
    Infrastructure,
    Service,
    ThrowawayDatabases,
    fresh_year,
    service_client,
    topics_under,
)

pytestmark = pytest.mark.integration


def accepted(session_id: uuid.UUID) -> EnrollmentAcceptedV1:
    """An acceptance of a new trainee in a session."""
    return EnrollmentAcceptedV1(
        enrollment_id=uuid.uuid4(),
        session_id=session_id,
        trainee_id=uuid.uuid4(),
        country="GH",
        gender="male",
        profession="expert",
        previous_status=None,
    )


def created(session_id: uuid.UUID, year: int) -> SessionCreatedV1:
    """A draft session's creation."""
    return SessionCreatedV1(
        session_id=session_id,
        version=1,
        organizer_id=uuid.uuid4(),
        title="Water-saving irrigation",
        field="agriculture_forestry",
        year=year,
        start_date=date(year, 9, 1),
        end_date=date(year, 9, 21),
        venue_city="Yangling",
        venue_country="CN",
        overseas=False,
        capacity=25,
        languages=["en", "fr"],
        description=None,
        review_required=False,
        country_limit=None,
    )


async def produce(kafka: KafkaSettings, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    """Send (key, value) messages to a topic and wait for the broker's acks."""
    producer = AIOKafkaProducer(**kafka.client_options(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


async def read_topic(
    kafka: KafkaSettings, topic: str, *, at_least: int, within: float = 15.0
) -> list[Any]:
    """Every record of a topic from the beginning (waits for ``at_least`` of them)."""
    consumer = AIOKafkaConsumer(
        topic, **kafka.client_options(), group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for part in batch.values():
                records.extend(part)
            if len(records) >= at_least:
                # One more short poll so that extra copies, if any, are seen too.
                for part in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(part)
                break
    finally:
        await consumer.stop()
    return records


async def session_counts(reporting: Service, session_id: uuid.UUID) -> dict[str, Any]:
    response = await reporting.http.get(f"/reports/sessions/{session_id}")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


@dataclass
class OwnReporting:
    """Reporting alone: its HTTP client, its topics (as the admin) and its database."""

    service: Service
    kafka: KafkaSettings
    url: str


@pytest.fixture
async def own_reporting(
    infrastructure: Infrastructure, databases: ThrowawayDatabases, run_id: str
) -> AsyncIterator[OwnReporting]:
    """Reporting alone on topics of its own: its count of events applied is this test's."""
    from tpp_reporting.app import create_app
    from tpp_reporting.config import Settings

    async with topics_under(infrastructure, f"{run_id}redelivery.") as kafka:
        url = await databases.create("reporting", "_redelivery")
        own: dict[str, Any] = {}
        if "reporting" in infrastructure.principals:
            user, password = infrastructure.principals["reporting"]
            own = {"kafka_username": user, "kafka_password": password}
        app = create_app(Settings(database_url=url, kafka=kafka, **own))
        await app.state.runtime.start()
        service = Service(app, service_client(app, base_url="http://reporting"))
        try:
            yield OwnReporting(service, kafka, url)
        finally:
            await service.aclose()
            await app.state.runtime.stop()


async def test_an_event_delivered_again_after_it_was_applied_is_not_applied_again(
    own_reporting: OwnReporting, eventually: Any
) -> None:
    """The copy comes in a later batch, after a newer event about the same enrollment: applied
    again, it would count one more event and put the withdrawn trainee back in their place."""
    reporting, kafka = own_reporting.service, own_reporting.kafka
    topic = kafka.topic(ENROLLMENTS.name)
    session_id = uuid.uuid4()
    key = str(session_id).encode()
    first = accepted(session_id)
    message = encode(wrap(first, source="/tests"))
    fields = first.model_dump(exclude={"promoted_from_waitlist"})
    withdrawn = EnrollmentWithdrawnV1(**fields | {"previous_status": "accepted", "reason": None})

    async def applied(events: int, **counts: int) -> dict[str, Any] | None:
        freshness = (await reporting.http.get("/reports/freshness")).json()
        figures = await session_counts(reporting, session_id)
        if freshness["events_applied"] < events or any(figures[k] != v for k, v in counts.items()):
            return None
        return {"events_applied": freshness["events_applied"]} | figures

    await produce(kafka, topic, [(key, message)])
    await eventually(lambda: applied(1, enrolled=1, accepted=1), what="the acceptance applied")
    await produce(kafka, topic, [(key, encode(wrap(withdrawn, source="/tests")))])
    await eventually(lambda: applied(2, enrolled=1, accepted=0), what="the withdrawal applied")

    # The same message again, then another trainee's acceptance after it on the partition:
    # once that one is applied, the copy was consumed.
    await produce(kafka, topic, [(key, message)])
    await produce(kafka, topic, [(key, encode(wrap(accepted(session_id), source="/tests")))])
    now = await eventually(lambda: applied(3, enrolled=2), what="the later acceptance applied")
    assert now["events_applied"] == 3  # the copy is not counted...
    assert now["accepted"] == 1  # ...nor applied over the withdrawal
    conn = await asyncpg.connect(asyncpg_dsn(own_reporting.url))
    try:
        recorded = await conn.fetchval(
            "SELECT count(*) FROM inbox_message WHERE event_id = $1",
            decode(message).envelope.id,
        )
    finally:
        await conn.close()
    assert recorded == 1


class RelayKilled(BaseException):
    """Stands for the relay process dying (not an error it could catch and retry)."""


async def test_relay_killed_between_publish_and_mark_republishes_and_inbox_absorbs(
    platform: Any, databases: Any, eventually: Any
) -> None:
    url = await databases.create("enrollment", "_relaycrash")
    engine = create_engine(url)
    outbox = Outbox(enrollment_tables.outbox, source="/enrollment")
    session_id = uuid.uuid4()
    try:
        async with session_factory(engine)() as db, db.begin():
            [event_id] = await outbox.add(db, [accepted(session_id)])

        async def die(_: Any) -> None:
            raise RelayKilled

        relay_args = {
            "dsn": asyncpg_dsn(url),
            "kafka": platform.kafka,
            "poll_interval_s": 0.2,
        }
        crashing = asyncio.create_task(OutboxRelay(after_publish=die, **relay_args).run())
        with pytest.raises(RelayKilled):
            await asyncio.wait_for(crashing, 20)

        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            unsent = await conn.fetchval(
                "SELECT count(*) FROM outbox_message WHERE published_at IS NULL"
            )
            assert unsent == 1  # published, but the relay died before marking it sent

            restarted = OutboxRelay(**relay_args)
            task = asyncio.create_task(restarted.run())

            async def marked() -> bool:
                still_unsent: int = await conn.fetchval(
                    "SELECT count(*) FROM outbox_message WHERE published_at IS NULL"
                )
                return still_unsent == 0

            await eventually(marked, what="the restarted relay marks the row sent")
            task.cancel()
        finally:
            await conn.close()

        topic = platform.kafka.topic(ENROLLMENTS.name)
        records = await read_topic(platform.kafka, topic, at_least=2)
        copies = [r for r in records if _event_id(r.value) == event_id]
        assert len(copies) == 2  # at-least-once on the wire...

        async def applied() -> dict[str, Any] | None:
            counts = await session_counts(platform.reporting, session_id)
            return counts if counts["enrolled"] else None

        await eventually(applied, what="reporting applies the enrollment")
        await asyncio.sleep(1.0)  # give the second copy time to be (not) applied
        counts = await session_counts(platform.reporting, session_id)
        assert counts["enrolled"] == 1  # ...exactly once in the projection
    finally:
        await engine.dispose()


async def test_poison_messages_do_not_block_the_partition(platform: Any, eventually: Any) -> None:
    session_id = uuid.uuid4()
    key = str(session_id).encode()
    year = fresh_year()
    good = wrap(created(session_id, year), source="/tests")
    bad_data = good.model_copy(update={"id": uuid.uuid4(), "data": {"session_id": "nope"}})
    unknown = good.model_copy(
        update={"id": uuid.uuid4(), "type": "tpp.registry.session.teleported.v9"}
    )
    await produce(
        platform.kafka,
        platform.kafka.topic(SESSIONS.name),
        [
            (key, b"\x00not json at all"),
            (key, b'{"specversion": "1.0", "id": "not-a-uuid"}'),
            (key, encode(bad_data)),
            (key, encode(unknown)),
            (key, encode(good)),
        ],
    )

    async def good_applied() -> dict[str, Any] | None:
        counts = await session_counts(platform.reporting, session_id)
        return counts if counts["year"] == year else None

    counts = await eventually(good_applied, what="the valid event after the poison ones applied")
    assert counts["status"] == "draft"


async def test_relay_publishes_each_keys_events_in_commit_order(
    platform: Any, databases: Any, eventually: Any
) -> None:
    url = await databases.create("enrollment", "_order")
    engine = create_engine(url)
    outbox = Outbox(enrollment_tables.outbox, source="/enrollment")
    sessions = [uuid.uuid4() for _ in range(4)]
    written: dict[uuid.UUID, list[uuid.UUID]] = {s: [] for s in sessions}
    try:
        maker = session_factory(engine)
        for _ in range(15):
            for session_id in random.sample(sessions, len(sessions)):
                async with maker() as db, db.begin():
                    [event_id] = await outbox.add(db, [accepted(session_id)])
                written[session_id].append(event_id)
        relay = OutboxRelay(
            dsn=asyncpg_dsn(url),
            kafka=platform.kafka,
            batch_size=7,  # several rounds, so order must hold across batches
        )
        task = asyncio.create_task(relay.run())
        await eventually(lambda: _published(relay, 60), what="60 events relayed")
        task.cancel()
    finally:
        await engine.dispose()
    records = await read_topic(platform.kafka, platform.kafka.topic(ENROLLMENTS.name), at_least=60)
    seen: dict[uuid.UUID, list[uuid.UUID]] = {s: [] for s in sessions}
    partitions: dict[uuid.UUID, set[int]] = {s: set() for s in sessions}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        read_id = _event_id(record.value)
        session_id = uuid.UUID(record.key.decode())
        if session_id in seen and read_id is not None:
            seen[session_id].append(read_id)
            partitions[session_id].add(record.partition)
    assert seen == written
    assert all(len(p) == 1 for p in partitions.values())  # one key, one partition


def _event_id(value: bytes) -> uuid.UUID | None:
    # Other tests put poison messages on the same topics: those are not our copies.
    try:
        return decode(value).envelope.id
    except PoisonMessageError:
        return None


async def _published(relay: OutboxRelay, count: int) -> bool:
    return relay.published >= count
