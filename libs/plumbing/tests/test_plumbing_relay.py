"""The outbox relay on a real PostgreSQL and a real Kafka: a row is marked sent only once the
broker has acknowledged it, and rows the broker refused go out later, in order."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from tpp_contracts.envelope import decode
from tpp_contracts.examples import example
from tpp_contracts.registry import OrganizerCreatedV1
from tpp_contracts.topics import ORGANIZERS
from tpp_plumbing.db.engine import asyncpg_dsn, new_metadata
from tpp_plumbing.db.writes import CommandPool
from tpp_plumbing.messaging import acl
from tpp_plumbing.messaging.outbox import Outbox, outbox_table
from tpp_plumbing.messaging.relay import OutboxRelay
from tpp_plumbing.settings import KafkaSettings
from tpp_testkit import Infrastructure, ThrowawayDatabases

pytestmark = pytest.mark.integration

OUTBOX = outbox_table(new_metadata())


@dataclass
class ForbiddenTopic:
    """A topic the relay's principal may see (DESCRIBE) but not write to, until ``allow``."""

    topic: str
    relay_kafka: KafkaSettings  # the relay's own principal, under the topic's prefix
    admin: KafkaSettings
    principal: str

    def binding(self, operation: acl.Operation) -> acl.Binding:
        return acl.Binding(
            acl.Resource.TOPIC, self.topic, acl.Pattern.LITERAL, self.principal, operation
        )

    async def allow_writes(self) -> None:
        await acl.grant(self.admin, [self.binding(acl.Operation.WRITE)])


@pytest.fixture
async def forbidden(infrastructure: Infrastructure, run_id: str) -> AsyncIterator[ForbiddenTopic]:
    if not infrastructure.acls:
        pytest.skip("Kafka enforces no ACLs here: a write cannot be refused")
    prefix = f"{run_id}.relay{uuid.uuid4().hex[:6]}."
    admin_kafka = infrastructure.kafka.with_prefix(prefix)
    user, _ = infrastructure.principals["registry"]
    topic = admin_kafka.topic(ORGANIZERS.name)
    forbidden = ForbiddenTopic(
        topic=topic,
        relay_kafka=infrastructure.as_role("registry", admin_kafka),
        admin=infrastructure.kafka,
        principal=f"User:{user}",
    )
    admin = AIOKafkaAdminClient(**infrastructure.kafka.client_options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1)])
        await acl.grant(infrastructure.kafka, [forbidden.binding(acl.Operation.DESCRIBE)])
        yield forbidden
    finally:
        await acl.revoke(
            infrastructure.kafka,
            [forbidden.binding(op) for op in (acl.Operation.DESCRIBE, acl.Operation.WRITE)],
        )
        await admin.delete_topics([topic])
        await admin.close()


async def unsent_ids(dsn: str) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT id FROM outbox_message WHERE published_at IS NULL")
    finally:
        await conn.close()
    return sorted(r["id"] for r in rows)


async def read_event_ids(kafka: KafkaSettings, topic: str, count: int) -> dict[bytes, list[Any]]:
    """Each key's event ids on ``topic`` in log order, once ``count`` records were read."""
    consumer = AIOKafkaConsumer(
        topic, **kafka.client_options(), group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while loop.time() < deadline and len(records) < count:
            for part in (await consumer.getmany(timeout_ms=300)).values():
                records.extend(part)
        # One more poll: a copy published twice would show up here.
        for part in (await consumer.getmany(timeout_ms=500)).values():
            records.extend(part)
    finally:
        await consumer.stop()
    by_key: dict[bytes, list[Any]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(record.key, []).append(decode(record.value).envelope.id)
    return by_key


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            pytest.fail(f"{what}: not within {within}s")
        await asyncio.sleep(0.1)


async def test_rows_the_broker_refused_stay_unsent_and_go_out_later_in_order(
    databases: ThrowawayDatabases,
    forbidden: ForbiddenTopic,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dsn = asyncpg_dsn(await databases.create("registry", f"_relay{uuid.uuid4().hex[:6]}"))
    outbox = Outbox(OUTBOX, source="/tests")
    organizers = [uuid.uuid4(), uuid.uuid4()]
    written: dict[bytes, list[uuid.UUID]] = {str(o).encode(): [] for o in organizers}
    pool = CommandPool(dsn, max_size=2)
    try:
        for _ in range(6):  # six commands, two events each: one per organizer
            events = [example(OrganizerCreatedV1, organizer_id=o) for o in organizers]
            async with pool.transaction() as tx:
                ids = await outbox.add(tx, events)
            for organizer, event_id in zip(organizers, ids, strict=True):
                written[str(organizer).encode()].append(event_id)
    finally:
        await pool.close()
    all_rows = await unsent_ids(dsn)
    assert len(all_rows) == 12

    caplog.set_level(logging.WARNING, logger="tpp_plumbing.messaging.relay")
    relay = OutboxRelay(dsn=dsn, kafka=forbidden.relay_kafka, batch_size=5, poll_interval_s=0.2)
    task = asyncio.create_task(relay.run())
    try:

        def refusals() -> int:
            return sum(
                1
                for r in caplog.records
                if r.name == "tpp_plumbing.messaging.relay"
                and "TopicAuthorizationFailed" in str(getattr(r, "error_type", ""))
            )

        async def refused_twice_or_marked() -> bool:
            # The broker refuses each try; a relay that did not wait for its answer would
            # have marked the rows sent instead.
            return refusals() >= 2 or await unsent_ids(dsn) != all_rows

        await until(refused_twice_or_marked, "the relay tries twice")
        assert await unsent_ids(dsn) == all_rows  # refused: nothing is marked sent
        assert relay.published == 0

        await forbidden.allow_writes()

        async def all_sent() -> bool:
            return not await unsent_ids(dsn)

        await until(all_sent, "the rows published once the topic may be written")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert relay.published == 12
    seen = await read_event_ids(forbidden.admin, forbidden.topic, 12)
    assert seen == written  # each key's events once, in the order they were committed


async def test_a_backlog_goes_out_once_in_order_and_is_marked_sent(
    databases: ThrowawayDatabases, infrastructure: Infrastructure, run_id: str
) -> None:
    # Rounds that follow one another at once mark the round before in the statement that
    # reads theirs: that round's rows must not be read (and sent) again.
    dsn = asyncpg_dsn(await databases.create("registry", f"_relay{uuid.uuid4().hex[:6]}"))
    kafka = infrastructure.kafka.with_prefix(f"{run_id}.backlog{uuid.uuid4().hex[:6]}.")
    topic = kafka.topic(ORGANIZERS.name)
    admin = AIOKafkaAdminClient(**infrastructure.kafka.client_options())
    await admin.start()
    await admin.create_topics([NewTopic(topic, 3, 1)])
    outbox = Outbox(OUTBOX, source="/tests")
    organizers = [uuid.uuid4() for _ in range(4)]
    written: dict[bytes, list[uuid.UUID]] = {str(o).encode(): [] for o in organizers}
    pool = CommandPool(dsn, max_size=2)
    try:
        for _ in range(12):  # 48 rows: ten rounds of five
            async with pool.transaction() as tx:
                events = [example(OrganizerCreatedV1, organizer_id=o) for o in organizers]
                ids = await outbox.add(tx, events)
            for organizer, event_id in zip(organizers, ids, strict=True):
                written[str(organizer).encode()].append(event_id)
        relay = OutboxRelay(dsn=dsn, kafka=kafka, batch_size=5, poll_interval_s=0.2)
        task = asyncio.create_task(relay.run())
        try:

            async def all_sent() -> bool:
                return not await unsent_ids(dsn)

            await until(all_sent, "every row marked sent")
        finally:
            await relay.stop(grace_s=5)
            await task
        assert relay.published == 48
        seen = await read_event_ids(infrastructure.kafka, topic, 48)
        assert seen == written  # each key's events once, in the order they were committed
    finally:
        await pool.close()
        await admin.delete_topics([topic])
        await admin.close()
