"""After the faults heal: nothing lost, nothing counted twice, nothing stuck.

Checks every enrollment confirmed with a 2xx against the enrollment database, the
enrollment topic and reporting (its database and its API, per session and per year); the
registry's sessions against both projections of them; outboxes empty; consumer lag 0 within
30 s; every poison message on a dead-letter topic.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from tpp_contracts.topics import ALL as ALL_TOPICS
from tpp_contracts.topics import ENROLLMENTS
from tpp_ops.offsets import committed_offsets
from tpp_plumbing.messaging import deadletter
from tpp_plumbing.settings import KafkaSettings
from tpp_reporting import readers as reporting_events

from tests.chaos.client import operator_token
from tests.chaos.faults import CONSUMERS, FaultLog
from tests.chaos.load import Load
from tests.chaos.stack import ChaosStack, log

LAG_WITHIN_S = 30.0
#: The largest share of client requests that may fail while every replica is restarted in
#: turn (a deploy), behind a balancer that re-routes refused connections.
ROLLING_FAILED_MAX = 0.01


@dataclass
class Verdict:
    """The counts the suite prints, and every failed check."""

    counts: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.failures.append(message)
            log(f"FAILED: {message}")


@dataclass
class TopicRecord:
    topic: str
    partition: int
    offset: int
    value: bytes | None


#: Seconds without a record after which a topic is taken as read (see ``read_topic``).
IDLE_S = 15.0


async def read_topic(kafka: KafkaSettings, topic: str) -> list[TopicRecord]:
    """Every record of a topic, from its first offset to its current end.

    A read that returns fewer records than the offsets say the topic holds (a long run once
    got no partition metadata for a topic after the broker's restart, and so read nothing)
    is done again with a new consumer, up to three times; then the checks fail on it.
    """
    records: list[TopicRecord] = []
    for attempt in range(1, 4):
        records, held = await _read_topic_once(kafka, topic)
        if len(records) >= held:
            return records
        log(f"{topic}: read {len(records)} of {held} records (try {attempt} of 3)")
        await asyncio.sleep(2)
    return records


async def _read_topic_once(kafka: KafkaSettings, topic: str) -> tuple[list[TopicRecord], int]:
    """The records read, and how many the partitions' offsets say there are."""
    consumer = AIOKafkaConsumer(
        **kafka.client_options(),
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    records: list[TopicRecord] = []
    try:
        tps: list[TopicPartition] = []
        for _ in range(30):  # metadata may lag just after a broker restart
            tps = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            if tps:
                break
            await consumer._client.force_metadata_update()  # aiokafka has no public call
            await asyncio.sleep(1)
        if not tps:
            raise RuntimeError(f"no partition of {topic} is known to the broker's metadata")
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        held = sum(ends[tp] - starts[tp] for tp in tps)
        await consumer.seek_to_beginning(*tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + 180
        idle_since = time.monotonic()
        while remaining and time.monotonic() < deadline:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=10_000)
            for items in batch.values():
                for r in items:
                    if r.offset < ends[TopicPartition(r.topic, r.partition)]:
                        records.append(TopicRecord(r.topic, r.partition, r.offset, r.value))
            if any(batch.values()):
                idle_since = time.monotonic()
            for tp in list(remaining):  # every partition, not only those that returned records
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            if remaining and time.monotonic() - idle_since > IDLE_S:
                # Nothing more to read, short of the end offsets taken right after a broker
                # restart: say so and go on; the checks then fail on anything really missing.
                short = {
                    f"{tp.partition}": (await consumer.position(tp), ends[tp]) for tp in remaining
                }
                log(f"{topic}: nothing more after {IDLE_S:.0f} s; (position, end) {short}")
                break
        if remaining and time.monotonic() >= deadline:
            raise RuntimeError(f"could not read {topic} to its end")
    finally:
        await consumer.stop()
    return records, held


async def lag_of(kafka: KafkaSettings, group: str, topics: list[str]) -> int:
    """Total lag of a group on every partition of ``topics`` (no commit yet = from 0)."""
    committed = await committed_offsets(kafka, group)
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # aiokafka has no public call
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
    finally:
        await consumer.stop()
    return sum(max(ends[tp] - committed.get(tp, starts[tp]), 0) for tp in tps)


async def unsent_outbox(stack: ChaosStack) -> dict[str, int]:
    counts = {}
    for name in ("registry", "enrollment"):
        conn = await asyncpg.connect(stack.database_url(name), timeout=5)
        try:
            counts[name] = int(
                await conn.fetchval(
                    "SELECT count(*) FROM outbox_message WHERE published_at IS NULL"
                )
            )
        finally:
            await conn.close()
    return counts


async def converge(stack: ChaosStack, verdict: Verdict) -> None:
    """Wait for empty outboxes and zero lag; lag must reach 0 within 30 s."""
    groups = {
        group: [t for t, readers in CONSUMERS.items() if group in readers]
        for group in ("enrollment", "reporting")
    }
    started = time.monotonic()
    state: dict[str, Any] = {}
    while True:
        try:
            outbox = await unsent_outbox(stack)
            lags = {g: await lag_of(stack.kafka, g, topics) for g, topics in groups.items()}
            state = {"outbox": outbox, "lag": lags}
            if not any(outbox.values()) and not any(lags.values()):
                break
        except Exception as error:  # a check that cannot run yet: try again
            state = {"error": type(error).__name__}
        if time.monotonic() - started > 120:
            break
        await asyncio.sleep(0.5)
    took = time.monotonic() - started
    verdict.counts["converged_in_s"] = round(took, 1)
    log(f"outboxes and consumer lag: {state} after {took:.1f} s")
    verdict.check("error" not in state, f"could not measure lag/outbox: {state}")
    outbox = state.get("outbox", {})
    lags = state.get("lag", {})
    verdict.check(not any(outbox.values()), f"outbox rows left unsent: {outbox}")
    verdict.check(not any(lags.values()), f"consumer lag not back to 0: {lags}")
    verdict.check(took <= LAG_WITHIN_S, f"lag took {took:.1f} s to reach 0 (limit 30 s)")


async def fetch(stack: ChaosStack, service: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(stack.database_url(service), timeout=10)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


async def verify(stack: ChaosStack, load: Load, faults: FaultLog) -> Verdict:
    verdict = Verdict()
    await converge(stack, verdict)
    confirmed = load.confirmed
    by_read = sum(1 for c in confirmed.values() if c.by_read)

    # --- the enrollment database
    rows = await fetch(
        stack, "enrollment", "SELECT id, session_id, trainee_id, status FROM enrollment"
    )
    in_db = {r["id"]: r for r in rows}
    missing_db = [i for i in confirmed if i not in in_db]
    wrong_db = [
        i
        for i, c in confirmed.items()
        if i in in_db
        and (in_db[i]["session_id"], in_db[i]["trainee_id"]) != (c.session_id, c.trainee_id)
    ]
    unconfirmed_db = [i for i in in_db if i not in confirmed]
    verdict.check(not missing_db, f"{len(missing_db)} confirmed enrollments not in the database")
    verdict.check(not wrong_db, f"{len(wrong_db)} enrollments stored for another session/trainee")
    verdict.check(
        not unconfirmed_db, f"{len(unconfirmed_db)} enrollments in the database never confirmed"
    )

    # --- the enrollment topic
    records = await read_topic(stack.kafka, ENROLLMENTS.name)
    event_ids: Counter[str] = Counter()
    published: set[uuid.UUID] = set()
    for record in records:
        envelope = _json(record.value)
        if envelope is None or envelope.get("source") == "/chaos":
            continue
        event_ids[str(envelope.get("id"))] += 1
        data = envelope.get("data")
        if isinstance(data, dict) and "enrollment_id" in data:
            published.add(uuid.UUID(str(data["enrollment_id"])))
    missing_topic = [i for i in confirmed if i not in published]
    verdict.check(not missing_topic, f"{len(missing_topic)} confirmed enrollments not on the topic")
    verdict.check(
        not (published - set(in_db)),
        f"{len(published - set(in_db))} enrollments on the topic but not in the database",
    )
    copies_on_topic = sum(n - 1 for n in event_ids.values())

    # --- reporting: database
    facts = await fetch(
        stack, "reporting", "SELECT enrollment_id, session_id, status FROM enrollment_fact"
    )
    in_reporting = Counter(r["enrollment_id"] for r in facts)
    reporting_status = {r["enrollment_id"]: r["status"] for r in facts}
    missing_reporting = [i for i in confirmed if i not in in_reporting]
    counted_twice = [i for i, n in in_reporting.items() if n > 1]
    not_confirmed = [i for i in in_reporting if i not in confirmed]
    stale_status = [
        i for i, r in in_db.items() if i in reporting_status and reporting_status[i] != r["status"]
    ]
    verdict.check(not missing_reporting, f"{len(missing_reporting)} confirmed not in reporting")
    verdict.check(not counted_twice, f"{len(counted_twice)} enrollments counted twice")
    verdict.check(not not_confirmed, f"{len(not_confirmed)} counted in reporting, never confirmed")
    verdict.check(
        not stale_status, f"{len(stale_status)} enrollments with another status in reporting"
    )

    # --- reporting: every event applied once (its inbox and applied counter vs the topics)
    expected: set[str] = set()
    for topic in ALL_TOPICS:
        records = await read_topic(stack.kafka, topic.name)
        log(f"{topic.name}: {len(records)} records")
        for record in records:
            try:
                event = reporting_events.decode(record.value)
            except reporting_events.PoisonError:
                continue
            if event is not None:
                expected.add(str(event.id))
    [state] = await fetch(stack, "reporting", "SELECT events_applied FROM projection_state")
    [inbox] = await fetch(stack, "reporting", "SELECT count(*) AS n FROM inbox_message")
    applied = int(state["events_applied"])
    duplicates_applied = applied - len(expected)
    verdict.check(
        applied == int(inbox["n"]) == len(expected),
        f"reporting applied {applied} events, its inbox holds {inbox['n']},"
        f" the topics hold {len(expected)} distinct events",
    )

    # --- reporting: the API, per session and per year (the report cache catches up)
    per_session = Counter(str(c.session_id) for c in confirmed.values())
    trainees = {c.trainee_id for c in confirmed.values()}
    api_problems = await _compare_reports(stack, load, per_session, len(confirmed), len(trainees))
    verdict.check(not api_problems, f"reporting API disagrees: {api_problems[:5]}")

    # --- registry changes reached both projections
    registry = {
        r["id"]: (r["capacity"], r["status"], r["version"])
        for r in await fetch(
            stack, "registry", "SELECT id, capacity, status, version FROM training_session"
        )
    }
    views = {
        r["session_id"]: (r["capacity"], r["status"], r["version"])
        for r in await fetch(
            stack, "enrollment", "SELECT session_id, capacity, status, version FROM session_view"
        )
    }
    session_facts = {
        r["session_id"]: (r["capacity"], r["status"], r["version"])
        for r in await fetch(
            stack, "reporting", "SELECT session_id, capacity, status, version FROM session_fact"
        )
    }
    view_off = [s for s, v in registry.items() if views.get(s) != v]
    fact_off = [s for s, v in registry.items() if session_facts.get(s) != v]
    verdict.check(not view_off, f"{len(view_off)} sessions differ in enrollment's session view")
    verdict.check(not fact_off, f"{len(fact_off)} sessions differ in reporting")

    # --- poison on the dead-letter topics; unknown types ignored
    parked: set[tuple[str, int, int, str]] = set()
    for topic in ALL_TOPICS:
        letters = await deadletter.read_dead_letters(
            stack.kafka, deadletter.dead_letter_topic(topic.name)
        )
        for letter in letters:
            parked.add(
                (
                    letter.original_topic,
                    int(letter.headers.get(deadletter.ORIGINAL_PARTITION, -1)),
                    int(letter.headers.get(deadletter.ORIGINAL_OFFSET, -1)),
                    letter.headers.get(deadletter.GROUP, ""),
                )
            )
    not_parked = [
        (p.topic, p.partition, p.offset, p.kind, group)
        for p in faults.poison
        for group in CONSUMERS[p.topic]
        if (p.topic, p.partition, p.offset, group) not in parked
    ]
    unknown_parked = [
        u
        for u in faults.unknown
        if any((u.topic, u.partition, u.offset, g) in parked for g in CONSUMERS[u.topic])
    ]
    verdict.check(not not_parked, f"poison not on a dead-letter topic: {not_parked[:5]}")
    verdict.check(not unknown_parked, f"unknown-type events parked: {unknown_parked[:5]}")

    lost = len(set(missing_db) | set(missing_topic) | set(missing_reporting))
    verdict.counts.update(
        {
            "commands": load.tally.commands,
            "enroll_commands": load.tally.enroll_commands,
            "confirmed": len(confirmed),
            "confirmed_by_read": by_read,
            "statuses": dict(load.tally.statuses),
            "published": len(published & set(confirmed)),
            "in_enrollment_db": len(in_db),
            "applied": sum(1 for i in confirmed if i in in_reporting),
            "events_applied_by_reporting": applied,
            "duplicates_delivered": faults.duplicates,
            "copies_on_enrollment_topic": copies_on_topic,
            "duplicates_applied": max(duplicates_applied, 0) + len(counted_twice),
            "counted_not_confirmed": len(not_confirmed),
            "lost": lost,
            "poison_injected": len(faults.poison),
            "poison_parked": len(faults.poison) - len({(t, p, o) for t, p, o, _, _ in not_parked}),
            "unknown_type_ignored": len(faults.unknown) - len(unknown_parked),
            "refused": load.tally.enroll_refused,
            "unresolved": load.tally.enroll_unresolved,
            "resolved_absent": load.tally.enroll_resolved_absent,
            "retries": load.tally.retries,
            "replayed": load.tally.replayed,
            "sessions_created": load.tally.sessions_created,
            "capacity_changes": load.tally.capacity_changes,
            "trainees_created": load.tally.trainees_created,
            "organizers_created": load.tally.organizers_created,
        }
    )
    if faults.rolling_requests:
        share = faults.rolling_failed / faults.rolling_requests
        verdict.counts.update(
            {
                "rolling_requests": faults.rolling_requests,
                "rolling_failed": faults.rolling_failed,
                "rolling_failed_share": round(share, 5),
            }
        )
        verdict.check(
            share < ROLLING_FAILED_MAX,
            f"{faults.rolling_failed} of {faults.rolling_requests} client requests"
            f" ({share:.2%}) failed during the rolling restart (limit {ROLLING_FAILED_MAX:.0%})",
        )
    verdict.counts.update(
        {
            "requests": load.tally.requests,
            "requests_failed": load.tally.failed,
            "rerouted": load.tally.rerouted,
            "request_failures": dict(load.tally.failures),
        }
    )
    verdict.check(lost == 0, f"{lost} confirmed enrollments lost")
    verdict.check(duplicates_applied <= 0, f"{duplicates_applied} events applied twice")
    return verdict


async def _compare_reports(
    stack: ChaosStack,
    load: Load,
    per_session: Counter[str],
    enrollments: int,
    trainees: int,
) -> list[str]:
    """Reporting's API against the confirmed set (polled: reports are cached briefly), on
    every replica (any replica answers any report)."""
    problems: list[str] = []
    for replica in stack.replicas_of("reporting"):
        found = await _compare_reports_at(replica.url, load, per_session, enrollments, trainees)
        problems += [f"{replica.name}: {problem}" for problem in found]
    return problems


async def _compare_reports_at(
    url: str,
    load: Load,
    per_session: Counter[str],
    enrollments: int,
    trainees: int,
) -> list[str]:
    problems: list[str] = []
    deadline = time.monotonic() + 30
    auth = {"Authorization": operator_token()}
    async with httpx.AsyncClient(timeout=30, headers=auth) as client:
        while True:
            problems = []
            rows: dict[str, int] = {}
            status = 200
            for offset in range(0, 1_000_000, 5_000):  # every page (5,000 rows at most each)
                page = await client.get(
                    f"{url}/reports/sessions",
                    params={"year": load.year, "limit": 5_000, "offset": offset},
                )
                status = page.status_code
                if status != 200:
                    break
                rows.update({r["session_id"]: r["enrolled"] for r in page.json()["rows"]})
                if len(page.json()["rows"]) < 5_000:
                    break
            year = await client.get(f"{url}/reports/years/{load.year}")
            if status != 200 or year.status_code != 200:
                problems.append(f"HTTP {status}/{year.status_code}")
            else:
                for session_id in set(rows) | set(per_session):
                    if rows.get(session_id, 0) != per_session.get(session_id, 0):
                        problems.append(
                            f"session {session_id}: reporting {rows.get(session_id, 0)},"
                            f" confirmed {per_session.get(session_id, 0)}"
                        )
                figures = year.json()
                if figures["enrollments"] != enrollments:
                    problems.append(f"year enrollments {figures['enrollments']} != {enrollments}")
                if figures["trainees_enrolled"] != trainees:
                    problems.append(f"year trainees {figures['trainees_enrolled']} != {trainees}")
            if not problems or time.monotonic() > deadline:
                return problems
            await asyncio.sleep(1)


def _json(value: bytes | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None
