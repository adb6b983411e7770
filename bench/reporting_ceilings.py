"""What a bare aiokafka consumer reads from the loaded topics: the reporting ceilings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer
from harness import CpuMeter
from reporting_events import TOPICS
from tpp_plumbing.settings import KafkaSettings
from tpp_reporting.readers import decode


async def bare_consumer(
    kafka: KafkaSettings,
    prefix: str,
    total: int,
    *,
    decoding: bool = False,
    inbox_dsn: str | None = None,
) -> float:
    """Records/s a bare aiokafka consumer reads from the topics (nothing written; nothing
    decoded, or with ``decoding`` each record decoded and checked by the reporting service's
    own reader, ``tpp_reporting.readers.decode``, as its consumer must before applying it).

    With ``inbox_dsn`` too, each batch's event ids are then claimed in the inbox as the
    service claims them (one ``INSERT … unnest … ON CONFLICT DO NOTHING`` a batch, in its own
    transaction, while the next batch is read and decoded), and nothing else is written: the
    least the design's inbox guarantee costs.
    """
    conn = await asyncpg.connect(inbox_dsn) if inbox_dsn else None
    if conn is not None:
        await conn.execute("TRUNCATE inbox_message")
    consumer = AIOKafkaConsumer(
        *(prefix + t for t in TOPICS),
        **kafka.client_options(),
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    claiming: asyncio.Future[None] | None = None
    try:
        seen = 0
        first = await consumer.getmany(timeout_ms=10_000, max_records=5000)
        started = time.perf_counter()
        seen = sum(len(v) for v in first.values())
        while seen < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            seen += sum(len(v) for v in batch.values())
            if decoding or conn is not None:
                claims = [
                    (event.id, event.type, tp.topic, tp.partition, record.offset)
                    for tp, records in batch.items()
                    for record in records
                    if (event := decode(record.value)) is not None
                ]
                if conn is not None and claims:
                    # One claim in flight while the next batch is read and decoded.
                    if claiming is not None:
                        await claiming
                    claiming = asyncio.ensure_future(_claim(conn, claims))
        if claiming is not None:
            await claiming
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()
        if conn is not None:
            await conn.execute("TRUNCATE inbox_message")  # the service starts on an empty one
            await conn.close()


@dataclass(frozen=True)
class EventCpu:
    """CPU an event cost, in µs: the consumer's process, PostgreSQL and the Kafka broker."""

    consumer_us: float
    postgres_us: float
    kafka_us: float

    @property
    def total_us(self) -> float:
        return self.consumer_us + self.postgres_us + self.kafka_us

    def __str__(self) -> str:
        return (
            f"CPU a record: consumer {self.consumer_us:.1f} µs, postgres {self.postgres_us:.1f},"
            f" broker {self.kafka_us:.1f}"
        )


async def consumed(
    runs: int, total: int, consumer: Callable[[], Awaitable[float]]
) -> tuple[list[float], EventCpu]:
    """``runs`` runs of a consumer reading ``total`` records: the sorted rates, and the CPU a
    record cost in the median run (from the consumer's start to its end)."""
    results: list[tuple[float, EventCpu]] = []
    for _ in range(runs):
        with CpuMeter() as meter:
            rate = await consumer()
        spent = meter.seconds
        results.append(
            (
                rate,
                EventCpu(
                    1e6 * spent["loadgen"] / total,
                    1e6 * spent["postgres"] / total,
                    1e6 * spent["kafka"] / total,
                ),
            )
        )
    results.sort(key=lambda r: r[0])
    return [r[0] for r in results], results[len(results) // 2][1]


async def _claim(conn: asyncpg.Connection, claims: list[tuple[Any, ...]]) -> None:
    async with conn.transaction():
        await conn.fetch(_CLAIM, *zip(*claims, strict=True))


_CLAIM = (
    'INSERT INTO inbox_message (event_id, event_type, topic, partition, "offset")'
    " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::bigint[])"
    " ON CONFLICT DO NOTHING RETURNING event_id"
)
