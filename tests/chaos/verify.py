"""After the faults heal: nothing lost, nothing counted twice, nothing stuck.

Checks every enrollment confirmed with a 2xx against the enrollment database, the
enrollment topic and reporting (its database and its API, per session and per year); the
registry's sessions against both projections of them; outboxes empty; consumer lag 0 within
30 s; every poison message on a dead-letter topic.
"""

from __future__ import annotations

import uuid
from collections import Counter

import asyncpg
from tpp_contracts.topics import ALL as ALL_TOPICS
from tpp_contracts.topics import ENROLLMENTS
from tpp_plumbing.messaging import deadletter
from tpp_reporting import readers as reporting_events

from tests.chaos.convergence import converge
from tests.chaos.faults import CONSUMERS, FaultLog
from tests.chaos.load import Load
from tests.chaos.report_checks import compare_reports
from tests.chaos.stack import ChaosStack, log
from tests.chaos.topic_reads import read_topic, record_json
from tests.chaos.verdict import Verdict

#: The largest share of client requests that may fail while every replica is restarted in
#: turn (a deploy), behind a balancer that re-routes refused connections.
ROLLING_FAILED_MAX = 0.01


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
        envelope = record_json(record.value)
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
    api_problems = await compare_reports(stack, load, per_session, len(confirmed), len(trainees))
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
