"""A batch of events is applied in one transaction: a failure part-way leaves nothing behind."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from aiokafka import ConsumerRecord
from tpp_contracts.enrollment import EnrollmentAcceptedV1
from tpp_contracts.envelope import encode, wrap
from tpp_contracts.topics import ENROLLMENTS
from tpp_plumbing.db.engine import asyncpg_dsn, create_engine, session_factory
from tpp_plumbing.db.writes import CommandPool
from tpp_reporting import consumers
from tpp_reporting.consumers import ProjectionConsumer
from tpp_reporting.store.projection import project_live

pytestmark = pytest.mark.integration


def record(value: bytes, offset: int, session_id: uuid.UUID) -> Any:
    return ConsumerRecord(
        topic=ENROLLMENTS.name,
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=str(session_id).encode(),
        value=value,
        checksum=None,
        serialized_key_size=36,
        serialized_value_size=len(value),
        headers=(),
    )


def accepted(session_id: uuid.UUID) -> EnrollmentAcceptedV1:
    return EnrollmentAcceptedV1(
        enrollment_id=uuid.uuid4(),
        session_id=session_id,
        trainee_id=uuid.uuid4(),
        country="GH",
        gender="male",
        profession="expert",
        previous_status=None,
    )


async def counts(url: str) -> tuple[int, int]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        inbox = await conn.fetchval("SELECT count(*) FROM inbox_message")
        facts = await conn.fetchval("SELECT count(*) FROM enrollment_fact")
    finally:
        await conn.close()
    return int(inbox), int(facts)


async def test_a_batch_that_fails_part_way_leaves_nothing_and_its_retry_applies_it_whole(
    databases: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await databases.create("reporting", "_batch_atomic")
    engine = create_engine(url)
    commands = CommandPool(asyncpg_dsn(url), max_size=2)
    consumer = ProjectionConsumer(
        sessions=session_factory(engine), commands=commands, max_message_bytes=1_000_000
    )
    session_id = uuid.uuid4()
    records = [
        record(encode(wrap(accepted(session_id), source="/tests")), offset, session_id)
        for offset in range(20)
    ]

    async def connection_lost(*args: Any) -> int:
        # After the inbox claim, the projections and the positions, before the batch
        # commits: what a PostgreSQL restart or a kill does to a batch in flight.
        await project_live(*args)
        raise ConnectionResetError("connection lost")

    try:
        with monkeypatch.context() as patch:
            patch.setattr(consumers, "project_live", connection_lost)
            with pytest.raises(ConnectionResetError):
                await consumer.apply(records)
        assert await counts(url) == (0, 0)  # neither claimed nor counted
        retried = await consumer.apply(records)
        assert (retried.applied, retried.duplicates) == (20, 0)  # none lost as a "duplicate"
        assert await counts(url) == (20, 20)
        again = await consumer.apply(records)  # a redelivery changes nothing
        assert (again.applied, again.duplicates) == (0, 20)
        assert await counts(url) == (20, 20)
    finally:
        await engine.dispose()
        await commands.close()


async def test_a_batch_with_events_applied_before_counts_only_the_new_ones(
    databases: Any,
) -> None:
    url = await databases.create("reporting", "_batch_mixed")
    engine = create_engine(url)
    commands = CommandPool(asyncpg_dsn(url), max_size=2)
    consumer = ProjectionConsumer(
        sessions=session_factory(engine), commands=commands, max_message_bytes=1_000_000
    )
    session_id = uuid.uuid4()
    records = [
        record(encode(wrap(accepted(session_id), source="/tests")), offset, session_id)
        for offset in range(20)
    ]
    try:
        first = await consumer.apply(records[:8])
        assert (first.applied, first.duplicates) == (8, 0)
        # Redelivered from offset 4 on (a rebalance), with twelve new events behind them.
        mixed = await consumer.apply(records[4:])
        assert (mixed.applied, mixed.duplicates) == (12, 4)
        assert await counts(url) == (20, 20)
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            state = await conn.fetchrow("SELECT version, events_applied FROM projection_state")
            position = await conn.fetchval("SELECT next_offset FROM consumer_position")
        finally:
            await conn.close()
        assert state is not None
        assert state["events_applied"] == 20  # none counted twice
        assert state["version"] == 2
        assert position == 20
    finally:
        await engine.dispose()
        await commands.close()
