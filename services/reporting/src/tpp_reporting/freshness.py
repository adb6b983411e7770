"""How fresh the reports are: the newest event applied, and the consumer's lag per partition.

Lag is measured against Kafka's high-water marks (short-lived aiokafka admin and consumer
clients ask for the partitions and their end offsets) and the offsets the projections have
applied (written in the same transaction as each batch, so they say what the tables hold).
A measurement is kept for a couple of seconds; a request never waits for one: it gets the
last, and a new one starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import BaseModel, Field
from tpp_plumbing.settings import KafkaSettings

log = logging.getLogger(__name__)


class PartitionLag(BaseModel):
    """How far the projections are behind on one partition."""

    topic: str
    partition: int
    high_water: int = Field(description="The offset the next produced record will get.")
    applied: int = Field(description="The next offset the projections will apply.")
    lag: int = Field(description="Records produced but not yet applied.")


class Lag(BaseModel):
    """The consumer lag at a moment."""

    total: int
    partitions: list[PartitionLag]
    measured_at: datetime


class Freshness(BaseModel):
    """How fresh a report is: all of it describes the copy served.

    A report is never older than what the projections held when its request arrived (it is
    computed again when they have moved since), so a caller sees its own writes once they
    are applied, and a later read never shows an older ``version``, whichever replica answers.
    """

    version: int = Field(
        0,
        description="The projections' version the report was computed at: one more with each"
        " batch of events applied; never lower on a later read.",
    )
    data_as_of: datetime | None = Field(
        description="Time of the newest event applied when the report was computed (None"
        " before the first one). The time the event happened, not when it was applied."
    )
    events_applied: int = Field(description="Events the projections had applied then.")
    consumer_lag: int | None = Field(
        description="Records Kafka held at `lag_measured_at` that the report had not applied,"
        " all partitions together (None while not measured yet)."
    )
    lag_measured_at: datetime | None = Field(
        description="When Kafka's high-water marks were last asked (at most every couple of"
        " seconds, never on a request's path)."
    )
    lag_by_partition: list[PartitionLag] = Field(default_factory=list)


Positions = dict[tuple[str, int], int]


class LagMonitor:
    """Measures the projections' lag behind Kafka, at most every ``interval_s`` seconds."""

    def __init__(
        self,
        *,
        kafka: KafkaSettings,
        topics: list[str],
        positions: Callable[[], Awaitable[Positions]],
        interval_s: float = 2.0,
    ) -> None:
        self._kafka = kafka
        self._topics = topics
        self._positions = positions
        self._interval_s = interval_s
        self._last: Lag | None = None
        self._task: asyncio.Task[None] | None = None
        self._measured_at = 0.0
        self._of: tuple[Lag, Positions, Lag] | None = None

    def current(self) -> Lag | None:
        """The last measurement; starts a new one in the background when it is old."""
        loop = asyncio.get_running_loop()
        stale = loop.time() - self._measured_at >= self._interval_s
        if stale and (self._task is None or self._task.done()):
            self._task = loop.create_task(self._refresh(), name="reporting-lag")
        return self._last

    def of(self, applied: Positions) -> Lag | None:
        """The last measurement's high-water marks against ``applied`` (the offsets a report
        was computed from): what Kafka held then that the report lacks."""
        last = self.current()
        if last is None:
            return None
        memo = self._of
        if memo is not None and memo[0] is last and memo[1] == applied:
            return memo[2]
        rows = [
            PartitionLag(
                topic=p.topic,
                partition=p.partition,
                high_water=p.high_water,
                applied=applied.get((p.topic, p.partition), 0),
                lag=max(p.high_water - applied.get((p.topic, p.partition), 0), 0),
            )
            for p in last.partitions
        ]
        lag = Lag(total=sum(r.lag for r in rows), partitions=rows, measured_at=last.measured_at)
        self._of = (last, applied, lag)
        return lag

    async def measure(self) -> Lag:
        """Measure now (also used by the rebuild command and tests)."""
        admin = AIOKafkaAdminClient(**self._kafka.client_options())
        await admin.start()
        try:
            described = await admin.describe_topics(self._topics)
        finally:
            await admin.close()
        partitions = [
            TopicPartition(topic["topic"], p["partition"])
            for topic in described
            if not topic.get("error_code")
            for p in topic["partitions"]
        ]
        ends: dict[TopicPartition, int] = {}
        if partitions:
            consumer = AIOKafkaConsumer(**self._kafka.client_options(), group_id=None)
            await consumer.start()
            try:
                ends = await consumer.end_offsets(partitions)
            finally:
                await consumer.stop()
        applied = await self._positions()
        rows = [
            PartitionLag(
                topic=tp.topic,
                partition=tp.partition,
                high_water=end,
                applied=applied.get((tp.topic, tp.partition), 0),
                lag=max(end - applied.get((tp.topic, tp.partition), 0), 0),
            )
            for tp, end in sorted(ends.items(), key=lambda kv: (kv[0].topic, kv[0].partition))
        ]
        return Lag(total=sum(r.lag for r in rows), partitions=rows, measured_at=datetime.now(UTC))

    async def _refresh(self) -> None:
        self._measured_at = asyncio.get_running_loop().time()
        try:
            self._last = await self.measure()
        except Exception as error:  # a broker hiccup must not fail reports
            log.warning("consumer lag not measured", extra={"error": type(error).__name__})

    async def close(self) -> None:
        """Wait for a measurement in flight (at shutdown)."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


def freshness_of(state: Mapping[str, Any], lag: LagMonitor | None) -> Freshness:
    """The freshness of a report read at ``state`` (``store.reports.state``): its lag is told
    against the offsets applied in it when they were read with it, else the latest ones."""
    positions: Positions | None = state.get("positions")
    measured = None
    if lag is not None:
        measured = lag.current() if positions is None else lag.of(positions)
    return Freshness(
        version=state["version"],
        data_as_of=state["last_event_at"],
        events_applied=state["events_applied"],
        consumer_lag=measured.total if measured else None,
        lag_measured_at=measured.measured_at if measured else None,
        lag_by_partition=measured.partitions if measured else [],
    )
