"""End-to-end freshness: from an enrollment's HTTP 2xx until a report read over HTTP shows it.

The enrollment service (``harness.WORKERS`` workers, relay on, consumers off: its session view
is seeded in SQL) and the reporting service (as many workers, consuming the same scratch
topics) run under uvicorn against scratch databases. This process sends enrollment commands
at 500/s (open loop); among them, PROBES_PER_S probes each enroll a trainee in a session of
its own and then read that session's report (``GET /reports/sessions/{id}``) every POLL_S
until it counts the enrollment. A probe's time runs from its 2xx to the end of the response
that showed it. Each probe's time is split with the databases' own timestamps (the same
clock: one machine): 2xx → the relay marked the event published (Kafka acked), → the
reporting batch that applied it began, → the report showed it.

- ``freshness.idle.p50``: probes one at a time, nothing else sent.
- ``freshness.p50@500`` / ``freshness.p99@500``: probes among 500 commands/s, three runs.

    set -a; . deploy/local.env; set +a
    uv run python bench/run.py freshness
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import statistics
import time
import uuid
from dataclasses import dataclass

import asyncpg
from bench_enrollment import enroll_requests, seed
from harness import (
    Context,
    CpuMeter,
    Figure,
    libpq,
    median_figure,
    scratch_database,
    scratch_topics,
    serve,
    service_env,
)
from loadgen import _connect, now, open_loop, request
from tpp_contracts.topics import ENROLLMENTS

NAME = "freshness"
TIME_BUDGET_S = 420
RATE = int(os.environ.get("TPP_BENCH_FRESHNESS_RATE", "500"))  # another rate: exploration only
PROBES_PER_S = 20
POLL_S = 0.005
REPEATS = 3


@dataclass(frozen=True)
class Probe:
    """One probe: its session, when its 2xx came (wall clock) and how long until a report
    showed it (seconds; None if it never did within the deadline)."""

    session_id: uuid.UUID
    acked_at: float
    seen_after: float | None


async def probe(
    enrollment_port: int, reporting_port: int, session_id: uuid.UUID, trainee_id: uuid.UUID
) -> Probe:
    """Enroll, then read the session's report until it counts the enrollment."""
    command = await _connect("127.0.0.1", enrollment_port)
    report = await _connect("127.0.0.1", reporting_port)
    try:
        body = json.dumps({"trainee_id": str(trainee_id)}).encode()
        status, answer = await command.send(
            request("POST", f"/sessions/{session_id}/enrollments", body)
        )
        acked, acked_at = now(), time.time()
        assert 200 <= status < 300, answer[:300]
        path = f"/reports/sessions/{session_id}"
        while now() - acked < 10:
            status, answer = await report.send(request("GET", path))
            if status == 200 and json.loads(answer)["enrolled"] >= 1:
                return Probe(session_id, acked_at, now() - acked)
            await asyncio.sleep(POLL_S)
        return Probe(session_id, acked_at, None)
    finally:
        for conn in (command, report):
            if conn.transport is not None:
                conn.transport.close()


async def probes(
    enrollment_port: int,
    reporting_port: int,
    sessions: list[uuid.UUID],
    trainees: list[uuid.UUID],
    *,
    rate: float,
    one_at_a_time: bool = False,
) -> list[Probe]:
    """A probe for each session, started ``rate`` per second (or each after the last)."""
    tasks: list[asyncio.Task[Probe]] = []
    start = now()
    for i, (session_id, trainee_id) in enumerate(zip(sessions, trainees, strict=False)):
        work = probe(enrollment_port, reporting_port, session_id, trainee_id)
        if one_at_a_time:
            tasks.append(asyncio.ensure_future(work))
            await tasks[-1]
            await asyncio.sleep(0.2)
            continue
        delay = start + i / rate - now()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(work))
    return list(await asyncio.gather(*tasks))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def sent_times(ctx: Context, topic: str, keys: set[str]) -> dict[str, float]:
    """When the relay put each key's record into a Kafka batch (its CreateTime, seconds)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**ctx.kafka.client_options())
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    tps = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(**ctx.kafka.client_options(), group_id=None)
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        found: dict[str, float] = {}
        deadline = now() + 30
        while now() < deadline and [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                for r in records:
                    key = r.key.decode() if r.key else ""
                    if key in keys:
                        found.setdefault(key, r.timestamp / 1000)
        return found
    finally:
        await consumer.stop()


async def breakdown(
    ctx: Context, topic: str, enrollment_url: str, reporting_url: str, found: list[Probe]
) -> dict[str, list[float]]:
    """Each probe's times from its 2xx, in ms (the databases' and Kafka's timestamps, one
    machine's clock): the relay put its event in a Kafka batch (the record's CreateTime), the
    relay marked it published (after Kafka acked the relay's whole round), the reporting
    batch that applied it began, and a report showed it."""
    seen = [p for p in found if p.seen_after is not None]
    keys = [str(p.session_id) for p in seen]
    sent = await sent_times(ctx, topic, set(keys))
    enrollment = await asyncpg.connect(libpq(enrollment_url))
    reporting = await asyncpg.connect(libpq(reporting_url))
    try:
        published = {
            r["key"]: (r["event_id"], r["published_at"].timestamp())
            for r in await enrollment.fetch(
                "SELECT key, event_id, published_at FROM outbox_message"
                " WHERE key = ANY($1::text[]) AND published_at IS NOT NULL",
                keys,
            )
        }
        applied = {
            r["event_id"]: r["applied_at"].timestamp()
            for r in await reporting.fetch(
                "SELECT event_id, applied_at FROM inbox_message WHERE event_id = ANY($1::uuid[])",
                [event_id for event_id, _ in published.values()],
            )
        }
    finally:
        await enrollment.close()
        await reporting.close()
    parts: dict[str, list[float]] = {
        "sent": [],
        "published": [],
        "batch began": [],
        "shown": [],
    }
    for p in seen:
        event = published.get(str(p.session_id))
        if event is None or event[0] not in applied or p.seen_after is None:
            continue
        if str(p.session_id) in sent:
            parts["sent"].append(1000 * (sent[str(p.session_id)] - p.acked_at))
        parts["published"].append(1000 * (event[1] - p.acked_at))
        parts["batch began"].append(1000 * (applied[event[0]] - p.acked_at))
        parts["shown"].append(1000 * p.seen_after)
    return parts


def describe(parts: dict[str, list[float]]) -> str:
    return "after the 2xx: " + "; ".join(
        f"{name} p50 {statistics.median(v):.0f} ms, p99 {percentile(v, 0.99):.0f}"
        for name, v in parts.items()
        if v
    )


async def run(ctx: Context) -> list[Figure]:
    """Serve enrollment and reporting on scratch topics; probe freshness idle and at 500/s."""
    return await measure(ctx, "freshness")


async def measure(ctx: Context, name: str) -> list[Figure]:
    """The figures ``<name>.idle.p50``, ``<name>.p50@500`` and ``<name>.p99@500`` on the
    Kafka that ``ctx.env`` names (``bench_cluster`` passes its three-node cluster's)."""
    seconds = 4.0 if ctx.quick else 10.0
    repeats = 1 if ctx.quick else REPEATS
    per_run = int(PROBES_PER_S * seconds)
    figures: list[Figure] = []
    async with (
        scratch_topics(ctx) as prefix,
        scratch_database(ctx, "enrollment") as enrollment_url,
        scratch_database(ctx, "reporting") as reporting_url,
    ):
        # Background sessions (400 of 40 places) and one session of its own per probe.
        probe_sessions = 20 + per_run * repeats
        sessions, trainees = await seed(enrollment_url, 400 + probe_sessions, 40, 8_000)
        background, probed = sessions[:400], iter(sessions[400:])
        probe_trainees = itertools.cycle(trainees)
        enrollment_env = service_env(
            "enrollment", enrollment_url, consumers_enabled=False, database_pool_size=20
        )
        enrollment_env["TPP_KAFKA_TOPIC_PREFIX"] = prefix
        reporting_env = service_env("reporting", reporting_url)
        reporting_env["TPP_KAFKA_TOPIC_PREFIX"] = prefix
        topic = prefix + ENROLLMENTS.name
        async with (
            serve(ctx, "tpp_enrollment.app:create_app", enrollment_env, label="fresh-enr") as enr,
            serve(ctx, "tpp_reporting.app:create_app", reporting_env, label="fresh-rep") as rep,
        ):
            make = enroll_requests(background, trainees, itertools.count())

            def take(n: int) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
                chosen = list(itertools.islice(probed, n))
                return chosen, [next(probe_trainees) for _ in chosen]

            # Warm up: connections, the relay's producer, the consumers' group.
            await open_loop(enr.port, make, rate=100, seconds=2)
            await probes(enr.port, rep.port, *take(5), rate=1, one_at_a_time=True)
            idle = await probes(enr.port, rep.port, *take(15), rate=1, one_at_a_time=True)
            idle_ms = [1000 * p.seen_after for p in idle if p.seen_after is not None]
            idle_parts = await breakdown(ctx, topic, enrollment_url, reporting_url, idle)
            print(
                f"[{name}] idle, one at a time: p50 {statistics.median(idle_ms):.0f} ms,"
                f" max {max(idle_ms):.0f} ({len(idle_ms)}/{len(idle)}); {describe(idle_parts)}",
                flush=True,
            )
            figures.append(
                Figure(
                    f"{name}.idle.p50",
                    statistics.median(idle_ms),
                    "ms",
                    runs=sorted(idle_ms),
                    note=f"one probe at a time, nothing else sent; {describe(idle_parts)}",
                )
            )
            p50s, p99s, notes = [], [], []
            for _ in range(repeats):
                mine = take(per_run)
                with CpuMeter(enr) as enr_cpu, CpuMeter(rep) as rep_cpu:
                    load, found = await asyncio.gather(
                        open_loop(
                            enr.port, make, rate=RATE - PROBES_PER_S, seconds=seconds, drain_s=5
                        ),
                        probes(enr.port, rep.port, *mine, rate=PROBES_PER_S),
                    )
                ms = [1000 * p.seen_after for p in found if p.seen_after is not None]
                missing = len(found) - len(ms)
                parts = await breakdown(ctx, topic, enrollment_url, reporting_url, found)
                p50s.append(percentile(ms, 0.5))
                # A probe never shown within 10 s counts as 10 s (it is not left out).
                p99s.append(percentile(ms + [10_000.0] * missing, 0.99))
                unanswered = sum(n for (_, status), n in load.statuses.items() if status == 0)
                notes.append(
                    f"{len(ms)}/{len(found)} shown; {load.ok()} commands 2xx, {unanswered}"
                    f" unanswered 5 s after the run, command p99 {load.percentile(0.99):.0f} ms;"
                    f" {describe(parts)}; cores: enrollment {enr_cpu.cores['server']:.2f},"
                    f" reporting {rep_cpu.cores['server']:.2f}, postgres"
                    f" {enr_cpu.cores['postgres']:.2f}, this process"
                    f" {enr_cpu.cores['loadgen']:.2f}, the rest of the machine"
                    f" {max(0.0, enr_cpu.cores['other'] - rep_cpu.cores['server']):.2f}"
                )
                print(
                    f"[{name}] at {RATE}/s: p50 {p50s[-1]:.0f} ms, p99 {p99s[-1]:.0f} ms;"
                    f" {notes[-1]}",
                    flush=True,
                )
            middle = sorted(range(len(p99s)), key=p99s.__getitem__)[len(p99s) // 2]
            context = (
                f"{RATE} commands/s ({PROBES_PER_S}/s of them probes), enrollment and reporting"
                f" {len(enr.pids())}/{len(rep.pids())} processes, report polled every"
                f" {POLL_S * 1000:.0f} ms; the run of the median p99: {notes[middle]}"
            )
            figures.append(median_figure(f"{name}.p50@{RATE}", p50s, "ms", target="<= 100"))
            figures.append(
                median_figure(f"{name}.p99@{RATE}", p99s, "ms", target="<= 250", note=context)
            )
    return figures


def main() -> None:
    import argparse

    from harness import Context as _Context

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    for figure in asyncio.run(run(_Context(quick=args.quick))):
        print(f"{figure.name:28} {figure.value:10.1f} {figure.unit} {figure.target or ''}")


if __name__ == "__main__":
    main()
