"""Outbox relay benchmark (issue 8): relay throughput against a bare producer, commit-to-ack.

- ``ceiling.kafka.producer_bare``: a bare aiokafka producer with the relay's settings
  (idempotent, acks=all, linger 2 ms, 256 KiB batches) sending the same enrollment events,
  keyed by session, to the same topic; records acknowledged per second.
- ``relay.max``: a backlog of outbox rows (written beforehand) drained by the platform's
  ``OutboxRelay`` (select 1,000, publish, wait for every ack, mark sent): events/s, as a
  ratio of the bare producer (``relay.vs_bare``).
- ``relay.commit_to_ack.p50/p99``: writers commit one enrollment event per raw transaction
  (``tpp_plumbing.db.writes``, as enrollments and new sessions are written) through
  ``Outbox.add`` at 1,000/s (open loop, sessions wired to the relay as the runtime wires them);
  the time from each commit to the broker's ack of its row (the relay's after-publish hook).

Everything runs in this process, as in a service (writers and relay share one event loop,
the service's tracing is configured and rows carry a sampled trace context; no span processor
exports, so the relay records no PRODUCER span and the writers' context goes on as it is),
against a scratch enrollment database and a scratch topic prefix. Events are keyed by 400
sessions.

    set -a; . deploy/local.env; set +a
    uv run python bench/run.py relay
"""

# Benchmark data, not cryptography; the bench polls counters it does not own (no events).
# ruff: noqa: S311, ASYNC110

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Sequence

import asyncpg
from aiokafka import AIOKafkaProducer
from harness import Context, Figure, libpq, median_figure, scratch_database, scratch_topics
from tpp_contracts.enrollment import EnrollmentAcceptedV1
from tpp_contracts.envelope import encode, wrap
from tpp_contracts.topics import ENROLLMENTS
from tpp_enrollment.store import tables
from tpp_plumbing.db.writes import CommandPool
from tpp_plumbing.messaging.outbox import Outbox
from tpp_plumbing.messaging.relay import OutboxRelay
from tpp_plumbing.observability import telemetry
from tpp_plumbing.settings import KafkaSettings

NAME = "relay"
TIME_BUDGET_S = 180
REPEATS = 3
RATE = 1000
WRITERS = 32


# A sampled trace context, as every command's rows carry.
TRACE_HEADERS = '{"traceparent": "00-%s-%s-01"}' % ("1" * 32, "2" * 16)  # noqa: UP031
SESSIONS = [uuid.uuid4() for _ in range(400)]  # enrollment events are keyed by session


def _event() -> EnrollmentAcceptedV1:
    return EnrollmentAcceptedV1(
        enrollment_id=uuid.uuid4(),
        session_id=random.choice(SESSIONS),
        trainee_id=uuid.uuid4(),
        country="KE",
        gender="female",
        profession="expert",
        previous_status=None,
    )


def _messages(count: int) -> list[tuple[bytes, bytes]]:
    messages = []
    for _ in range(count):
        event = _event()
        messages.append((event.key().encode(), encode(wrap(event, source="/enrollment"))))
    return messages


async def bare_producer_rate(kafka: KafkaSettings, topic: str, count: int) -> float:
    """Records/s of a bare producer with the relay's settings (all sent, then all acked)."""
    messages = _messages(count)
    producer = AIOKafkaProducer(
        **kafka.client_options(),
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=messages[0][1], key=messages[0][0])
        started = time.perf_counter()
        futures = [await producer.send(topic, value=v, key=k) for k, v in messages]
        await asyncio.gather(*futures)
        return count / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def _write_backlog(dsn: str, count: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        event_type = EnrollmentAcceptedV1.type
        rows = [
            (uuid.uuid4(), event_type, ENROLLMENTS.name, key.decode(), value, TRACE_HEADERS)
            for key, value in _messages(count)
        ]
        await conn.copy_records_to_table(
            "outbox_message",
            records=rows,
            columns=["event_id", "event_type", "topic", "key", "payload", "headers"],
        )
    finally:
        await conn.close()


async def relay_rate(dsn: str, kafka: KafkaSettings, prefix: str, count: int) -> float:
    """Events/s of the relay draining a backlog of ``count`` rows."""
    await _write_backlog(dsn, count)
    relay = OutboxRelay(dsn=dsn, kafka=kafka.with_prefix(prefix), poll_interval_s=0.05)
    started = time.perf_counter()
    task = asyncio.create_task(relay.run())
    try:
        while relay.published < count:
            await asyncio.sleep(0.005)
        # The producer's start (metadata, idempotence id) is part of the relay's time here.
        return count / (time.perf_counter() - started)
    finally:
        await relay.stop(0)
        await asyncio.wait_for(task, 30)


async def commit_to_ack(
    url: str, kafka: KafkaSettings, prefix: str, rate: float, seconds: float
) -> list[float]:
    """Milliseconds from each writer's commit to the broker's ack of its outbox row."""
    acked: dict[int, float] = {}

    async def after_publish(ids: Sequence[int]) -> None:
        now = time.perf_counter()
        for row_id in ids:
            acked[row_id] = now

    relay = OutboxRelay(
        dsn=libpq(url), kafka=kafka.with_prefix(prefix), after_publish=after_publish
    )
    # Raw transactions, as the busiest commands (enroll, create a session) write their events.
    commands = CommandPool(libpq(url), max_size=WRITERS, after_outbox_commit=relay.committed)
    outbox = Outbox(tables.outbox, source="/enrollment")
    committed: dict[int, float] = {}
    limit = asyncio.Semaphore(WRITERS)  # an overloaded machine queues writers, not the pool
    current_id = "SELECT currval(pg_get_serial_sequence('outbox_message', 'id'))"

    async def write() -> None:
        async with limit:
            async with commands.transaction() as tx:
                await outbox.add(tx, [_event()])
                found = await tx.fetchrow(current_id)
            assert found is not None
            committed[int(found[0])] = time.perf_counter()

    task = asyncio.create_task(relay.run())
    try:
        while not relay.is_leader:
            await asyncio.sleep(0.01)
        for _ in range(50):  # warm up the pool and the producer
            await write()
        await asyncio.sleep(0.5)
        committed.clear()
        writers: set[asyncio.Task[None]] = set()
        started = time.perf_counter()
        total = int(rate * seconds)
        for n in range(total):
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            writer = asyncio.create_task(write())
            writers.add(writer)
            writer.add_done_callback(writers.discard)
        await asyncio.gather(*writers)
        deadline = time.perf_counter() + 10
        while any(i not in acked for i in committed) and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        # A row not acked within 10 s counts with 10 s.
        return [1000 * (acked.get(i, c + 10) - c) for i, c in committed.items()]
    finally:
        await relay.stop(1)
        await asyncio.wait_for(task, 30)
        await commands.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(ctx: Context) -> list[Figure]:
    """Bare producer, relay drain, commit-to-ack latency."""
    # As in a service: commands are traced, so the relay records a publish span per row
    # (exported only when OTEL_* names an exporter).
    telemetry.configure_tracing("enrollment")
    count = 20_000 if ctx.quick else 50_000
    seconds = 3.0 if ctx.quick else 6.0
    bare, drained, p50s, p99s = [], [], [], []
    async with scratch_topics(ctx) as prefix:
        topic = prefix + ENROLLMENTS.name
        for _ in range(REPEATS):
            bare.append(await bare_producer_rate(ctx.kafka, topic, count))
            print(f"  bare producer: {bare[-1]:.0f} records/s", flush=True)
        async with scratch_database(ctx, "enrollment", "_relay") as url:
            dsn = libpq(url)
            for _ in range(REPEATS):
                drained.append(await relay_rate(dsn, ctx.kafka, prefix, count))
                print(f"  relay drain: {drained[-1]:.0f} events/s", flush=True)
            for _ in range(REPEATS):
                latencies = await commit_to_ack(url, ctx.kafka, prefix, RATE, seconds)
                p50s.append(_percentile(latencies, 0.5))
                p99s.append(_percentile(latencies, 0.99))
                print(
                    f"  commit to ack at {RATE}/s: p50 {p50s[-1]:.1f} ms, p99 {p99s[-1]:.1f} ms"
                    f" ({len(latencies)} events)",
                    flush=True,
                )
    bare_figure = median_figure("ceiling.kafka.producer_bare", bare, "records/s")
    relay_figure = median_figure(
        "relay.max",
        drained,
        "events/s",
        target=">= 10000",
        ceiling="ceiling.kafka.producer_bare",
        note=f"backlog of {count} rows",
    )
    ratios = sorted(d / b for d, b in zip(drained, bare, strict=True))
    return [
        bare_figure,
        relay_figure,
        median_figure("relay.vs_bare", ratios, "ratio", target=">= 0.5"),
        median_figure(f"relay.commit_to_ack.p50@{RATE}", p50s, "ms"),
        median_figure(f"relay.commit_to_ack.p99@{RATE}", p99s, "ms", target="<= 50"),
    ]
