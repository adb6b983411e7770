"""A partition's next records are read while its batch is applied, and wait their turn; a
busy topic's partitions are applied in several transactions at once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from tpp_contracts.enrollment import EnrollmentAcceptedV1
from tpp_contracts.envelope import encode, wrap
from tpp_contracts.topics import ENROLLMENTS
from tpp_plumbing.db.engine import new_metadata, session_factory
from tpp_plumbing.messaging.consumer import Applied, EventConsumer, Record
from tpp_plumbing.messaging.inbox import Inbox, inbox_table

from .operations_support import Scratch, accepted, own_topics, produce, running, scratch

pytestmark = pytest.mark.integration


class Watched(EventConsumer):
    """The scratch projection, noting each batch's records as it begins and how many batches
    were in flight at most; each batch waits for ``gate`` before it is applied."""

    def __init__(self, proj: Scratch) -> None:
        super().__init__(
            name="ops-watched",
            sessions=session_factory(proj.engine),
            inbox=Inbox(inbox_table(new_metadata())),
            handlers={EnrollmentAcceptedV1: proj.handle},
        )
        self.batches: list[list[tuple[int, int]]] = []  # (partition, offset) of each batch
        self.running = 0
        self.most_running = 0

    async def gate(self) -> None:
        """What a batch waits for once it is in flight (nothing here)."""

    async def apply(self, records: Sequence[Record]) -> Applied:
        self.batches.append([(r.partition, r.offset) for r in records])
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.gate()
            return await super().apply(records)
        finally:
            self.running -= 1


class HeldFirstBatch(Watched):
    """Its first batch waits until ``release`` is set."""

    def __init__(self, proj: Scratch) -> None:
        super().__init__(proj)
        self.release = asyncio.Event()

    async def gate(self) -> None:
        if len(self.batches) == 1:
            await self.release.wait()


async def test_a_partitions_next_records_are_read_during_its_batch_and_applied_after_it(
    infrastructure: Any, databases: Any, eventually: Any
) -> None:
    kafka = infrastructure.kafka
    async with (
        own_topics(infrastructure, ENROLLMENTS.name, partitions=1) as prefix,
        scratch(databases.create) as proj,
    ):
        topic = prefix + ENROLLMENTS.name
        key = str(uuid.uuid4()).encode()
        events = [wrap(accepted(uuid.uuid4()), source="/tests") for _ in range(10)]
        await produce(kafka, topic, [(key, encode(e)) for e in events[:5]])
        consumer = HeldFirstBatch(proj)
        async with running(
            consumer, kafka=kafka, topics=[topic], group=prefix + "ops-ahead", batch=True
        ) as (runner, _):

            async def began() -> bool:
                return bool(consumer.batches)

            await eventually(began, within=10, what="the first batch")
            await produce(kafka, topic, [(key, encode(e)) for e in events[5:]])

            async def read_ahead() -> bool:
                return runner.waiting > 0

            # Read while the first batch is applied, but not handed to a second worker.
            await eventually(read_ahead, within=10, what="the next records read")
            await asyncio.sleep(0.3)
            assert len(consumer.batches) == 1
            assert sum((await runner.measure_lag()).values()) == 10  # nothing committed yet

            consumer.release.set()

            async def caught_up() -> bool:
                return sum((await runner.measure_lag()).values()) == 0

            await eventually(caught_up, within=10, what="offsets committed past all ten")
        assert [o for batch in consumer.batches for _, o in batch] == list(range(10))
        assert consumer.most_running == 1
        assert [await proj.applied(e.id) for e in events] == [1] * 10


class Overlapping(Watched):
    """Each batch waits (3 s at most) until two are in flight."""

    def __init__(self, proj: Scratch) -> None:
        super().__init__(proj)
        self.two = asyncio.Event()

    async def gate(self) -> None:
        if self.running >= 2:
            self.two.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.two.wait(), 3.0)


async def test_a_busy_topics_fetch_is_applied_in_two_transactions_at_once(
    infrastructure: Any, databases: Any, eventually: Any
) -> None:
    kafka = infrastructure.kafka
    async with (
        own_topics(infrastructure, ENROLLMENTS.name, partitions=2) as prefix,
        scratch(databases.create) as proj,
    ):
        topic = prefix + ENROLLMENTS.name
        events = [wrap(accepted(uuid.uuid4()), source="/tests") for _ in range(10)]
        for partition in (0, 1):
            key = str(uuid.uuid4()).encode()
            mine = events[partition * 5 : partition * 5 + 5]
            await produce(kafka, topic, [(key, encode(e)) for e in mine], partition=partition)
        consumer = Overlapping(proj)
        async with running(
            consumer,
            kafka=kafka,
            topics=[topic],
            group=prefix + "ops-split",
            batch=True,
            concurrency=2,
        ) as (runner, _):

            async def caught_up() -> bool:
                lag = await runner.measure_lag()
                return len(lag) == 2 and sum(lag.values()) == 0

            await eventually(caught_up, within=15, what="offsets committed past all ten")
        # Both partitions' batches were in flight together, each batch one partition's records
        # in their order, and every event applied once.
        assert consumer.most_running == 2
        for batch in consumer.batches:
            assert len({p for p, _ in batch}) == 1
            assert [o for _, o in batch] == sorted(o for _, o in batch)
        assert sorted(pair for batch in consumer.batches for pair in batch) == [
            (p, o) for p in (0, 1) for o in range(5)
        ]
        assert [await proj.applied(e.id) for e in events] == [1] * 10
