"""Freshness on real Kafka and PostgreSQL: a report is never older than the projections were
when its request arrived, on either of two instances sharing the database, and a caller sees
its own commitments at once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from tpp_plumbing.db.engine import asyncpg_dsn
from tpp_plumbing.db.reads import ReadPool
from tpp_plumbing.db.uow import UnitsOfWork
from tpp_reporting.app import create_app
from tpp_reporting.config import Settings
from tpp_reporting.service import ReportingService
from tpp_testkit import service_client

from .reporting_support import Program, fresh_year, ok

pytestmark = pytest.mark.integration


@pytest.fixture
async def other(platform: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A second reporting instance on the same database (a replica or another worker); the
    platform's instance applies the events."""
    settings = Settings(
        database_url=platform.urls["reporting"], kafka=platform.kafka, consumers_enabled=False
    )
    app = create_app(settings)
    client = service_client(app, base_url="http://reporting-2")
    try:
        yield client
    finally:
        await client.aclose()
        await app.state.runtime.stop()


@pytest.fixture
async def db(platform: Any) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(asyncpg_dsn(platform.urls["reporting"]))
    try:
        yield conn
    finally:
        await conn.close()


async def projections(db: asyncpg.Connection) -> tuple[int, int]:
    """The projections' (version, events applied) now."""
    row = await db.fetchrow("SELECT version, events_applied FROM projection_state WHERE id = 1")
    assert row is not None
    return row["version"], row["events_applied"]


def fresh(response: httpx.Response) -> dict[str, Any]:
    """A report's body, checking that its headers tell the freshness its body tells."""
    body = ok(response)
    freshness = body["freshness"]
    assert response.headers["X-Data-As-Of"] == (
        freshness["data_as_of"].replace("Z", "+00:00") if freshness["data_as_of"] else "none"
    )
    assert response.headers["X-Projection-Version"] == str(freshness["version"])
    return body


async def test_every_read_after_a_change_is_applied_shows_it_on_either_instance(
    platform: Any, other: httpx.AsyncClient, db: asyncpg.Connection, eventually: Any
) -> None:
    program = Program(platform.registry.http, platform.enrollment.http)
    year = fresh_year()
    organizer = await program.organizer("Hunan Academy of Agricultural Sciences")
    instances = [platform.reporting.http, other]
    for client in instances:  # each instance has computed the year's report already
        assert fresh(await client.get(f"/reports/years/{year}"))["sessions"] == 0
    await program.session(organizer, year, publish=False)

    async def applied() -> tuple[int, int] | None:
        count = await db.fetchval("SELECT count(*) FROM session_fact WHERE year = $1", year)
        return await projections(db) if count else None

    version, events = await eventually(applied, what="the session applied to the projections")
    for n in range(20):
        report = fresh(await instances[n % 2].get(f"/reports/years/{year}"))
        assert report["sessions"] == 1, f"read {n} served a report from before the change"
        assert report["freshness"]["version"] >= version
        assert report["freshness"]["events_applied"] >= events


async def test_reads_never_go_backwards_across_instances_while_events_arrive(
    platform: Any, other: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    program = Program(platform.registry.http, platform.enrollment.http)
    year = fresh_year()
    organizer = await program.organizer("Tanzania Industrial Research Organisation")
    session_id = await program.session(organizer, year, capacity=200)
    trainees = [await program.trainee("TZ", "female", "expert") for _ in range(12)]
    instances = [platform.reporting.http, other]
    path = f"/reports/sessions/{session_id}"

    async def enroll_all() -> None:
        for trainee in trainees:
            await program.enroll(session_id, trainee)
            await asyncio.sleep(0.05)

    writer = asyncio.create_task(enroll_all())
    last_version, last_events, last_enrolled, n = -1, -1, -1, 0
    try:
        deadline = asyncio.get_running_loop().time() + 30
        # Until every enrollment shows: the reads span the batches that apply them.
        while last_enrolled < len(trainees) or n < 40:
            assert asyncio.get_running_loop().time() < deadline, f"{last_enrolled} shown"
            floor, events = await projections(db)  # what the projections held beforehand
            report = fresh(await instances[n % 2].get(path))
            version = report["freshness"]["version"]
            served = report["freshness"]["events_applied"]
            assert version >= floor, f"read {n}: version {version}, projections had {floor}"
            assert served >= events, f"read {n}: {served} events applied, projections had {events}"
            assert version >= last_version, f"read {n} went back from {last_version}"
            assert served >= last_events, f"read {n} went back from {last_events} events"
            assert report["enrolled"] >= last_enrolled, f"read {n} lost enrollments"
            last_version, last_events, n = version, served, n + 1
            last_enrolled = report["enrolled"]
    finally:
        await writer


async def listing(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/commitments")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()
    return items


async def test_a_callers_commitment_writes_show_at_once_on_either_instance(
    platform: Any, other: httpx.AsyncClient
) -> None:
    instances = [platform.reporting.http, other]
    for client in instances:  # each instance has computed the list already
        await listing(client)
    body = {
        "name": "Scholarships",
        "metric": "trainees_completed",
        "target": 150_000,
        "start_year": 2061,
        "end_year": 2065,
    }
    created = ok(await platform.reporting.http.post("/commitments", json=body), 201)
    for client in instances * 3:
        listed = await listing(client)
        assert created["commitment_id"] in [c["commitment_id"] for c in listed]
    deleted = await other.delete(f"/commitments/{created['commitment_id']}")
    assert deleted.status_code == 204, deleted.text
    for client in instances * 3:
        listed = await listing(client)
        assert created["commitment_id"] not in [c["commitment_id"] for c in listed]
        gone = await client.get(f"/commitments/{created['commitment_id']}")
        assert gone.status_code == 404, gone.text


class CountingReads(ReadPool):
    """The read pool, noting each statement sent on its own and each snapshot lent."""

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn, max_size=2)
        self.calls: list[str] = []

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        self.calls.append("statement")
        return await super().fetch(query, *args)

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Any]:
        self.calls.append("snapshot")
        async with super().snapshot() as conn:
            yield conn


async def test_a_session_report_and_the_freshness_are_one_statement_after_every_change(
    platform: Any, db: asyncpg.Connection, eventually: Any
) -> None:
    # A poll after each applied batch must not pay a probe and a snapshot's round trips.
    program = Program(platform.registry.http, platform.enrollment.http)
    year = fresh_year()
    organizer = await program.organizer("Mongolian University of Science and Technology")
    session_id = await program.session(organizer, year)
    reads = CountingReads(asyncpg_dsn(platform.urls["reporting"]))
    units = UnitsOfWork(platform.reporting.app.state.runtime.sessions, outbox=None)
    service = ReportingService(units, reads=reads)
    try:
        for enrolled in (0, 1):

            async def applied(enrolled: int = enrolled) -> tuple[int, int] | None:
                count = await db.fetchval(
                    "SELECT count(*) FROM session_fact s JOIN enrollment_fact e USING (session_id)"
                    " WHERE s.session_id = $1",
                    session_id,
                )
                known = await db.fetchval(
                    "SELECT count(*) FROM session_fact WHERE session_id = $1", session_id
                )
                return await projections(db) if known and count == enrolled else None

            version, events = await eventually(applied, what=f"{enrolled} enrollments applied")
            reads.calls.clear()
            report = await service.session_report(uuid.UUID(session_id))
            assert reads.calls == ["statement"]
            assert report.enrolled == enrolled
            assert report.freshness is not None
            assert report.freshness.version >= version
            assert report.freshness.events_applied >= events
            if not enrolled:
                await program.enroll(session_id, await program.trainee("MN", "male", "scholar"))
        reads.calls.clear()  # GET /reports/freshness: one statement too
        assert (await service.freshness()).version >= version
        assert reads.calls == ["statement"]
    finally:
        await reads.close()
