"""Rebuild from the log: the rebuilt tables equal the live ones, and the API never stops."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from tpp_contracts.enrollment import TraineeErasedV1
from tpp_contracts.envelope import encode, wrap
from tpp_contracts.topics import TRAINEES
from tpp_plumbing.db.engine import asyncpg_dsn
from tpp_plumbing.settings import KafkaSettings
from tpp_reporting.config import Settings
from tpp_reporting.rebuild import rebuild
from tpp_reporting.store import tables

from .reporting_support import Program, fresh_year, ok

pytestmark = pytest.mark.integration

# Columns that say when a row was written, not what the events say.
VOLATILE = {"inbox_message": {"applied_at"}, "projection_state": {"version"}}


async def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection table's rows (without the volatile columns), sorted; and indexes."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
        )
        out: dict[str, list[tuple[Any, ...]]] = {"(indexes)": [tuple(r) for r in indexes]}
        for table in tables.PROJECTION_TABLES:
            columns = [c.name for c in table.columns if c.name not in VOLATILE.get(table.name, ())]
            quoted = ", ".join(f'"{c}"' for c in columns)
            rows = await conn.fetch(f"SELECT {quoted} FROM {table.name} ORDER BY {quoted}")
            out[table.name] = [tuple(r) for r in rows]
        return out
    finally:
        await conn.close()


async def produce(kafka: KafkaSettings, topic: str, key: bytes, values: list[bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**kafka.client_options(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


async def lag_now(platform: Any) -> Any:
    return await platform.reporting.app.state.lag.measure()


async def quiet(platform: Any, ends: dict[tuple[str, int], int] | None = None) -> bool:
    """Everything in the log is applied, and nothing new arrived for a second (or since)."""
    first = await lag_now(platform)
    if ends is None:
        await asyncio.sleep(1.0)
        ends = {(p.topic, p.partition): p.high_water for p in first.partitions}
        first = await lag_now(platform)
    now = {(p.topic, p.partition): p.high_water for p in first.partitions}
    return bool(first.total == 0 and now == ends)


async def test_rebuild_equals_live_row_by_row_while_the_api_keeps_serving(
    platform: Any, eventually: Any
) -> None:
    program = Program(platform.registry.http, platform.enrollment.http)
    year = fresh_year()
    await program.plan(year, planned=2)
    organizer = await program.organizer("Harbin Institute of Technology")
    session = await program.session(organizer, year, capacity=3, title="Cold-region roads")
    trainees = [await program.trainee(c, "male", "expert") for c in ("GH", "GH", "MN", "PK")]
    enrollments = [await program.enroll(session, t) for t in trainees]
    await program.lifecycle(session, "close-enrollment", "start")
    for enrollment in enrollments[:2]:
        await program.step(enrollment["id"], "check-in")
        await program.step(enrollment["id"], "complete", {"completed_on": f"{year}-05-30"})
    await program.lifecycle(session, "complete")
    # A trainee erased (trainee topic), and the same event delivered twice (enrollment topic).
    erased = wrap(TraineeErasedV1(trainee_id=uuid.UUID(trainees[0])), source="/tests")
    await produce(
        platform.kafka,
        platform.kafka.topic(TRAINEES.name),
        trainees[0].encode(),
        [encode(erased), encode(erased)],  # the second copy is absorbed by the inbox
    )

    await eventually(lambda: quiet(platform), within=60, what="a quiet, fully applied log")
    url = platform.urls["reporting"]
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        erased_rows = await conn.fetch(
            "SELECT count(*) FROM enrollment_fact WHERE trainee_id = $1", uuid.UUID(trainees[0])
        )
        assert erased_rows[0][0] == 0  # the link to the person is gone, the figures stay
    finally:
        await conn.close()
    ends = {(p.topic, p.partition): p.high_water for p in (await lag_now(platform)).partitions}
    before = await dump(url)
    assert before["enrollment_fact"]
    expected = ok(await platform.reporting.http.get(f"/reports/years/{year}"))

    served: list[tuple[int, int]] = []
    stop = asyncio.Event()

    async def keep_asking() -> None:
        while not stop.is_set():
            response = await platform.reporting.http.get(f"/reports/sessions?year={year}")
            rows = response.json().get("rows", []) if response.status_code == 200 else []
            served.append((response.status_code, sum(r["completed"] for r in rows)))
            await asyncio.sleep(0.01)

    asker = asyncio.create_task(keep_asking())
    live_settings = platform.reporting.runtime.settings
    settings = Settings(
        database_url=url,
        kafka=platform.kafka,
        consumer_max_message_bytes=live_settings.consumer_max_message_bytes,
    )
    try:
        result = await rebuild(settings, show_progress=False, chunk=500)
    finally:
        stop.set()
        await asker
    assert result.records >= before["projection_state"][0][0]  # events_applied
    assert await quiet(platform, ends=ends), "events arrived during the rebuild: no comparison"
    after = await dump(url)
    for name in before:
        assert after[name] == before[name], f"{name} differs after the rebuild"
    assert served
    assert all(status == 200 for status, _ in served), served
    assert {completed for _, completed in served} == {2}

    # The live consumer goes on applying new events to the rebuilt tables.
    late = await program.trainee("TZ", "female", "scholar")
    other = await program.session(organizer, year, title="Permafrost")
    await program.enroll(other, late)

    async def counted() -> dict[str, Any] | None:
        report = ok(await platform.reporting.http.get(f"/reports/years/{year}"))
        return report if report["enrollments"] == expected["enrollments"] + 1 else None

    await eventually(counted, within=30, what="the live consumer applies a new event")
