"""One publish round of the outbox relay: read the oldest unsent rows, produce them, mark them sent.

``PublishRound`` is ``OutboxRelay``'s base (``tpp_plumbing.messaging.relay``: the relay's life,
leadership and wake-ups), kept apart so the round reads in one place. A round reads rows in id
order, packs them into one record batch per partition and sends each batch whole with the
idempotent producer, then marks them published, on the lock's own session (in the statement
that reads the next round, when one follows at once). Fencing: a batch goes out only within
``_proof_s`` of a query that proved the lock session alive (re-proved if the round took
longer), and a session that cannot be proved raises ``LeadLostError``.

Tracing: each row is published in a PRODUCER span, child of the trace context stored with the
row, whose own context goes into the Kafka headers.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from murmurhash2 import murmurhash2
from opentelemetry import trace
from opentelemetry.trace import Span, StatusCode
from tpp_contracts.envelope import CONTENT_TYPE

from tpp_plumbing.messaging.outbox import TABLE_NAME
from tpp_plumbing.observability import telemetry
from tpp_plumbing.observability.metrics import Metrics

_READ = "id, event_id, event_type, topic, key, payload, headers"
#: What a lost (or unproved) connection raises: the lock's session is gone.
_CONNECTION_LOST = (asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError)


AfterPublish = Callable[[Sequence[int]], Awaitable[None]]


class LeadLostError(Exception):
    """The relay's lock session ended (or could not be proved alive): it no longer leads."""


class PublishRound:
    """A round of publishing on the relay's lock session; ``OutboxRelay`` sets these."""

    _batch_size: int
    _prefix: str
    _service: str
    _metrics: Metrics | None
    _lease_s: float
    _proof_s: float
    _proved_at: float
    _after_publish: AfterPublish | None
    _before_publish: AfterPublish | None
    published: int

    async def _prove(self, conn: asyncpg.Connection) -> None:
        """Prove the lock session alive now (a session lock lives as long as its session)."""
        asked_at = asyncio.get_running_loop().time()
        try:
            await conn.fetchval("SELECT 1", timeout=self._proof_s * 2)
        except (asyncpg.PostgresError, *_CONNECTION_LOST) as error:
            raise LeadLostError from error
        self._proved_at = asked_at

    async def _proved(self, conn: asyncpg.Connection) -> None:
        """The lock was proved within ``_proof_s``: prove it again if not (fencing)."""
        if asyncio.get_running_loop().time() - self._proved_at > self._proof_s:
            await self._prove(conn)

    async def publish_batch(self, conn: asyncpg.Connection, producer: AIOKafkaProducer) -> int:
        """Publish the oldest unsent rows and mark them sent; returns how many.

        Raises ``LeadLostError`` when the lock session cannot be proved alive before a send."""
        rows = await self._publish(conn, producer, mark=[])
        await self._mark(conn, rows)
        return len(rows)

    async def _publish(
        self, conn: asyncpg.Connection, producer: AIOKafkaProducer, *, mark: list[asyncpg.Record]
    ) -> list[asyncpg.Record]:
        """Publish the oldest unsent rows; returns them once Kafka acknowledged them, not yet
        marked sent. ``mark``: rows of the round before, acknowledged, marked sent by the
        statement that reads these (one round trip less a round under load)."""
        asked_at = asyncio.get_running_loop().time()
        try:
            if mark:
                # The read sees the table as it was before the update: the rows being
                # marked are still unsent there, hence left out by id.
                rows = await conn.fetch(
                    f"WITH marked AS (UPDATE {TABLE_NAME} SET published_at = now()"
                    " WHERE id = ANY($2::bigint[]) RETURNING id)"
                    f" SELECT {_READ} FROM {TABLE_NAME} WHERE published_at IS NULL"
                    # A hashed lookup: `<> ALL($2)` compares each row with every id.
                    " AND id NOT IN (SELECT id FROM marked) ORDER BY id LIMIT $1",
                    self._batch_size,
                    [row["id"] for row in mark],
                    timeout=self._lease_s,
                )
            else:
                rows = await conn.fetch(
                    f"SELECT {_READ} FROM {TABLE_NAME} WHERE published_at IS NULL"
                    " ORDER BY id LIMIT $1",
                    self._batch_size,
                    timeout=self._lease_s,
                )
        except _CONNECTION_LOST as error:
            raise LeadLostError from error  # the session (and so the lock) is gone or unproved
        self._proved_at = asked_at
        if mark:
            self._count(mark)
        if not rows:
            return []
        if self._before_publish is not None:
            await self._before_publish([row["id"] for row in rows])
        spans: list[Span] = []
        # A PRODUCER span per row only while a span processor exports: otherwise nothing
        # would read it, and the writer's trace context goes on in the headers as it is.
        traced = telemetry.enabled() and telemetry.ExportingProcessor.live > 0
        parsed = functools.lru_cache(maxsize=64)(_stored_headers)  # a command's rows share
        # Rows go into one record batch per partition, in id order, each submitted whole:
        # a third of the CPU of one send() per row (a future and an accumulator lookup each).
        # The producer keeps one batch per partition in flight, so each key stays in order.
        batches: dict[tuple[str, int], BatchBuilder] = {}
        sent: list[asyncio.Future[Any]] = []
        partitions: dict[str, list[int]] = {}
        try:
            for row in rows:
                raw = row["headers"]
                stored = parsed(raw) if isinstance(raw, str) else _stored_headers(raw)
                span = self._publish_span(row, stored) if traced else trace.INVALID_SPAN
                if traced:
                    spans.append(span)
                topic = self._prefix + row["topic"]
                if topic not in partitions:
                    partitions[topic] = sorted(await producer.partitions_for(topic))
                key = row["key"].encode()
                partition = partition_of(key, partitions[topic], partitions[topic])
                message = {
                    "timestamp": None,
                    "key": key,
                    "value": row["payload"],
                    "headers": _kafka_headers(stored, span),
                }
                batch = batches.get((topic, partition))
                if batch is None or batch.append(**message) is None:
                    if batch is not None:  # full: submitted, and a new one started
                        await self._proved(conn)
                        batch.close()
                        sent.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = batches[topic, partition] = producer.create_batch()
                    if batch.append(**message) is None:  # a new batch takes its first record
                        raise RuntimeError(f"outbox row {row['id']}: not added to a new batch")
            for (topic, partition), batch in batches.items():
                await self._proved(conn)
                # Closed, it goes out at once: the round is whole, nothing to linger for.
                batch.close()
                sent.append(await producer.send_batch(batch, topic, partition=partition))
            await self._acked(conn, asyncio.gather(*sent))
        except BaseException as error:
            for span in spans:
                span.set_status(StatusCode.ERROR)
                span.set_attribute("error.type", type(error).__qualname__)
                span.end()
            raise
        for span in spans:
            span.end()
        if self._after_publish is not None:
            await self._after_publish([row["id"] for row in rows])
        return rows

    async def _mark(self, conn: asyncpg.Connection, rows: Sequence[asyncpg.Record]) -> None:
        """Mark acknowledged rows sent, on the lock's own session: a deposed leader's mark
        fails with its session."""
        if not rows:
            return
        await conn.execute(
            f"UPDATE {TABLE_NAME} SET published_at = now() WHERE id = ANY($1::bigint[])",
            [row["id"] for row in rows],
            timeout=self._lease_s,
        )
        self._count(rows)

    def _count(self, rows: Sequence[asyncpg.Record]) -> None:
        self.published += len(rows)
        if self._metrics is not None:
            published = collections.Counter((row["topic"], row["event_type"]) for row in rows)
            for (topic, event_type), n in published.items():
                self._metrics.events_published.labels(topic, event_type).inc(n)

    async def _acked(self, conn: asyncpg.Connection, acks: asyncio.Future[Any]) -> None:
        """Wait for the broker's acks, keeping the lock session from its idle timeout (a
        broker failover can take longer than the lease)."""
        while True:
            done, _ = await asyncio.wait({acks}, timeout=self._proof_s)
            if done:
                acks.result()
                return
            try:
                await self._prove(conn)
            except LeadLostError:
                acks.cancel()
                raise

    def _publish_span(self, row: Any, stored: dict[str, str]) -> Span:
        parent = telemetry.extract_mapping(stored) if "traceparent" in stored else None
        return telemetry.tracer().start_span(
            f"{self._prefix}{row['topic']} publish",
            context=parent,
            kind=trace.SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.destination.name": self._prefix + row["topic"],
                "messaging.message.id": str(row["event_id"]),
                "tpp.event.type": row["event_type"],
                telemetry.SERVICE_ATTRIBUTE: self._service,
            },
        )


def _stored_headers(stored: Any) -> dict[str, str]:
    if isinstance(stored, str):
        stored = json.loads(stored)
    return {str(k): str(v) for k, v in (stored or {}).items()}


#: Kafka's seed for murmur2 (the Java client's Utils.murmur2).
_MURMUR2_SEED = 0x9747B28C


def partition_of(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """aiokafka's (Java's) default partitioner, with the key's hash cached."""
    if key is None:
        return int(DefaultPartitioner()(key, all_partitions, available))
    # murmurhash2's C murmur2, far cheaper a key than aiokafka's pure Python one (same hash).
    index: int = (murmurhash2(key, _MURMUR2_SEED) & 0x7FFFFFFF) % len(all_partitions)
    return all_partitions[index]


_CONTENT_TYPE_HEADER = ("content-type", CONTENT_TYPE.encode())


def _kafka_headers(values: dict[str, str], span: Span) -> list[tuple[str, bytes]]:
    """content-type, the row's own headers, and the publish span as the trace parent."""
    headers = [_CONTENT_TYPE_HEADER]
    trace_headers = telemetry.kafka_trace_headers(span) if span.get_span_context().is_valid else []
    if trace_headers:  # else (tracing off here) the writer's context passes through as is
        values = {k: v for k, v in values.items() if k not in telemetry.TRACE_HEADERS}
    headers.extend((k, v.encode()) for k, v in values.items())
    headers.extend(trace_headers)
    return headers
