"""FastStream against the platform's consumer runner, for reporting's ingest, in one run.

Loads the program's events (``reporting_events.Events``) on scratch topics, then applies all of
them to a fresh reporting database, alternately with:

- ``runner``: ``tpp_plumbing.messaging.runner.ConsumerRunner``, as the reporting service runs
  it (one batched consumer per topic, ``batch_size`` records a transaction, offsets committed
  after);
- ``faststream``: FastStream's ``KafkaBroker`` with one ``batch=True`` subscriber per topic,
  manual acknowledgement after the same ``ProjectionConsumer.apply`` (same decoding, inbox and
  projections in one transaction).

Both run in this process, so the figures compare the consuming machinery alone. Events/s from
the first applied batch to the last (the median of the rounds).

    set -a; . deploy/local.env; set +a
    uv run python bench/bench_faststream.py [--events 300000] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Context, CpuMeter, Figure, libpq, scratch_database, scratch_topics
from reporting_events import TOPICS, Events, load

BATCH = 20_000  # reporting's batch_size default
MAX_MESSAGE_BYTES = 1 << 20


async def _timed(url: str, total: int, seconds: float = 600) -> float:
    """Records/s from the first applied batch until all ``total`` are (the positions that
    each batch's transaction saves, as ``reporting_service.ingest`` polls them)."""
    conn = await asyncpg.connect(libpq(url))
    try:
        deadline = time.monotonic() + seconds
        start_at: float | None = None
        start_n = done = 0
        while time.monotonic() < deadline:
            done = int(
                await conn.fetchval("SELECT coalesce(sum(next_offset), 0) FROM consumer_position")
            )
            now = time.perf_counter()
            if start_at is None and done > 0:
                start_at, start_n = now, done
            if done >= total:
                break
            await asyncio.sleep(0.02)
    finally:
        await conn.close()
    if start_at is None or done < total:
        raise RuntimeError(f"applied {done} of {total} within {seconds} s")
    return (done - start_n) / (time.perf_counter() - start_at)


def _consumers(url: str) -> tuple[Any, Any, list[Any]]:
    from tpp_plumbing.db.engine import asyncpg_dsn, create_engine, session_factory
    from tpp_plumbing.db.writes import CommandPool
    from tpp_reporting.consumers import ProjectionConsumer

    engine = create_engine(url)
    sessions = session_factory(engine)
    commands = CommandPool(asyncpg_dsn(url), max_size=len(TOPICS))
    consumers = [
        ProjectionConsumer(
            sessions=sessions,
            commands=commands,
            max_message_bytes=MAX_MESSAGE_BYTES,
            name=f"p-{i}",
        )
        for i in range(len(TOPICS))
    ]
    return engine, commands, consumers


async def with_runner(ctx: Context, url: str, prefix: str, total: int, label: str) -> float:
    """Events/s of the platform's ConsumerRunner (one batched runner per topic)."""
    from tpp_plumbing.messaging.deadletter import DeadLetterSink
    from tpp_plumbing.messaging.runner import ConsumerRunner

    engine, commands, consumers = _consumers(url)
    sink = DeadLetterSink(ctx.kafka)
    group = f"{prefix}{label}"
    runners = []
    for consumer, topic in zip(consumers, TOPICS, strict=True):
        consumer.bind(group=group, service="reporting", max_message_bytes=MAX_MESSAGE_BYTES)
        runners.append(
            ConsumerRunner(
                consumer,
                topics=[prefix + topic],
                group_id=group,
                kafka=ctx.kafka,
                sink=sink,
                batch=True,
                max_records=BATCH,
                concurrency=1,
            )
        )
    try:
        for runner in runners:
            await runner.start()
        return await _timed(url, total)
    finally:
        for runner in runners:
            await runner.stop()
        await sink.close()
        await engine.dispose()
        await commands.close()


async def with_faststream(ctx: Context, url: str, prefix: str, total: int, label: str) -> float:
    """Events/s of FastStream batch subscribers applying through the same consumer."""
    from faststream import AckPolicy
    from faststream.kafka import KafkaBroker
    from faststream.kafka.annotations import KafkaMessage
    from tpp_plumbing.runtime import faststream_security

    engine, commands, consumers = _consumers(url)
    broker = KafkaBroker(ctx.kafka.bootstrap, logger=None, security=faststream_security(ctx.kafka))
    for consumer, topic in zip(consumers, TOPICS, strict=True):

        def handler(consumer: Any = consumer) -> Callable[[KafkaMessage], Awaitable[None]]:
            async def on_batch(message: KafkaMessage) -> None:
                try:
                    await consumer.apply(list(message.raw_message))
                except BaseException:
                    await message.nack()
                    raise
                await message.ack()

            return on_batch

        broker.subscriber(
            prefix + topic,
            group_id=f"{prefix}{label}",
            batch=True,
            max_records=BATCH,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.MANUAL,
            fetch_max_wait_ms=50,
            max_partition_fetch_bytes=2 * MAX_MESSAGE_BYTES,
            decoder=lambda message: message.body,
        )(handler())
    try:
        await broker.start()
        return await _timed(url, total)
    finally:
        await broker.stop()
        await engine.dispose()
        await commands.close()


async def run(ctx: Context, events: int | None = None, rounds: int | None = None) -> list[Figure]:
    """The two ingest rates, measured alternately, and their ratio."""
    target = events or (100_000 if ctx.quick else 300_000)
    rounds = rounds or (2 if ctx.quick else 3)
    measured: dict[str, list[float]] = {"runner": [], "faststream": []}
    cpu: dict[str, list[str]] = {"runner": [], "faststream": []}
    ways = {"runner": with_runner, "faststream": with_faststream}
    async with scratch_topics(ctx) as prefix:
        total = await load(ctx.kafka, prefix, Events(target), target)
        print(f"[faststream] loaded {total:,} events", flush=True)
        for i in range(rounds):
            for name, way in ways.items():
                async with scratch_database(ctx, "reporting", f"_{name}{i}") as url:
                    with CpuMeter() as meter:
                        rate = await way(ctx, url, prefix, total, f"{name}-{i}")
                measured[name].append(rate)
                cpu[name].append(str(meter))
                print(f"[faststream] round {i + 1} {name}: {rate:,.0f} events/s ({meter})")
    runner, faststream = (statistics.median(measured[k]) for k in ("runner", "faststream"))
    return [
        Figure(
            "reporting.ingest.runner_in_process",
            runner,
            "events/s",
            runs=measured["runner"],
            note=f"ConsumerRunner, {total:,} events, batches of {BATCH:,}; {cpu['runner'][-1]}",
        ),
        Figure(
            "reporting.ingest.faststream_batch",
            faststream,
            "events/s",
            runs=measured["faststream"],
            note=f"FastStream batch=True, manual ack, same apply; {cpu['faststream'][-1]}",
        ),
        Figure("reporting.ingest.faststream_vs_runner", faststream / runner, "x", target=">= 0.8"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    figures = asyncio.run(run(Context(quick=args.quick), args.events, args.rounds))
    for figure in figures:
        print(figure)


if __name__ == "__main__":
    main()
