"""Commits wake the relay (writers do not NOTIFY), even while the service's loop is busy;
a connection lost mid-request: 503."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from tpp_contracts.enrollment import EnrollmentAcceptedV1
from tpp_enrollment.store import tables as enrollment_tables
from tpp_plumbing.db.engine import asyncpg_dsn, create_engine, session_factory
from tpp_plumbing.messaging.outbox import Outbox
from tpp_plumbing.messaging.relay import OutboxRelay
from tpp_plumbing.runtime import Runtime
from tpp_plumbing.settings import ServiceSettings
from tpp_plumbing.web.problems import install_problem_handlers

pytestmark = pytest.mark.integration

POLL_S = 60.0  # far longer than the test waits: only a wake-up publishes in time


def accepted() -> EnrollmentAcceptedV1:
    return EnrollmentAcceptedV1(
        enrollment_id=uuid.uuid4(),
        session_id=uuid.uuid4(),
        trainee_id=uuid.uuid4(),
        country="GH",
        gender="female",
        profession="expert",
        previous_status=None,
    )


async def test_commits_wake_the_leader_in_process_and_through_a_standby_relay(
    kafka: Any, databases: Any, eventually: Any
) -> None:
    url = await databases.create("enrollment", "_wake")
    engine = create_engine(url)
    outbox = Outbox(enrollment_tables.outbox, source="/enrollment")
    args = {
        "dsn": asyncpg_dsn(url),
        "kafka": kafka,
        "poll_interval_s": POLL_S,
    }
    leader, standby = OutboxRelay(**args), OutboxRelay(**args)
    tasks = [asyncio.create_task(leader.run())]
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await eventually(lambda: _true(leader.is_leader), what="the first relay leads")
        tasks.append(asyncio.create_task(standby.run()))
        await eventually(lambda: _true(standby.heartbeat_at is not None), what="standby waits")
        # The first polls are behind us: from now on only a wake-up publishes in time.
        await asyncio.sleep(0.5)

        async def published(event_id: uuid.UUID) -> bool:
            sent = await conn.fetchval(
                "SELECT published_at IS NOT NULL FROM outbox_message WHERE event_id = $1",
                event_id,
            )
            return bool(sent)

        for relay, where in [(leader, "the leader's process"), (standby, "a standby's process")]:
            sessions = session_factory(engine, after_outbox_commit=relay.committed)
            async with sessions() as db, db.begin():
                [event_id] = await outbox.add(db, [accepted()])
            await eventually(
                lambda e=event_id: published(e), within=5, what=f"publish after {where}"
            )

        # A rolled-back transaction leaves nothing to wake for; a commit without a wake-up
        # waits for the poll (which proves the test above measured the wake-ups).
        sessions = session_factory(engine, after_outbox_commit=leader.committed)
        async with sessions() as db:
            async with db.begin():
                await outbox.add(db, [accepted()])
                await db.rollback()
            async with db.begin():
                await db.execute(text("SELECT 1"))
        async with session_factory(engine)() as db, db.begin():
            [silent] = await outbox.add(db, [accepted()])
        await asyncio.sleep(1.5)
        assert not await published(silent)
        assert leader.is_leader
        assert not standby.is_leader
    finally:
        await leader.stop(0)
        await standby.stop(0)
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
        await conn.close()
        await engine.dispose()


async def _true(value: bool) -> bool:
    return value


BUSY_S = 3.0


async def test_a_relay_on_its_own_thread_is_not_held_back_by_a_busy_service(
    kafka: Any, databases: Any, eventually: Any
) -> None:
    url = await databases.create("enrollment", "_busy")
    outbox = Outbox(enrollment_tables.outbox, source="/enrollment")
    runtime = Runtime(
        ServiceSettings(
            database_url=url, kafka=kafka, relay_poll_interval_s=POLL_S, relay_mode="thread"
        ),
        name="enrollment",
    )
    await runtime.start()
    conn = await asyncpg.connect(asyncpg_dsn(url))

    async def sent_after(event_id: uuid.UUID) -> float | None:
        """Seconds from the writer's transaction to the relay's mark (Kafka acknowledged)."""
        lag = await conn.fetchval(
            "SELECT extract(epoch FROM published_at - created_at) FROM outbox_message"
            " WHERE event_id = $1",
            event_id,
        )
        return None if lag is None else float(lag)

    try:
        # The relay leads and its producer is connected: the first event goes out.
        async with runtime.sessions() as db, db.begin():
            [first] = await outbox.add(db, [accepted()])
        await eventually(
            lambda: _not_none(sent_after(first)), within=15, what="the first event published"
        )
        async with runtime.sessions() as db, db.begin():
            [event_id] = await outbox.add(db, [accepted()])
        # The service's loop then runs handlers' CPU work without yielding to other tasks.
        until = time.monotonic() + BUSY_S
        while time.monotonic() < until:
            pass
        lag = await sent_after(event_id)
        assert lag is not None, "the event waited for the service's loop"
        assert lag < BUSY_S / 3
    finally:
        await conn.close()
        await runtime.stop()


async def _not_none(value: Awaitable[float | None]) -> bool:
    return await value is not None


async def test_a_connection_dropped_during_a_request_gives_503_once(
    databases: Any, infrastructure: Any
) -> None:
    url = await databases.create("enrollment", "_drop")
    engine = create_engine(url, pool_size=4)
    sessions = session_factory(engine)
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/count")
    async def count(wait: float = 0) -> dict[str, int]:
        async with sessions() as db:
            await db.execute(text("SELECT pg_sleep(:s)"), {"s": wait})
            n = await db.scalar(text("SELECT count(*) FROM trainee"))
        return {"trainees": int(n or 0)}

    async def drop_connections() -> int:
        admin = await asyncpg.connect(infrastructure.admin_url)
        try:
            dropped: int = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                url.rsplit("/", 1)[1].split("?")[0],
            )
        finally:
            await admin.close()
        return dropped

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        try:
            warm = await asyncio.gather(*(http.get("/count") for _ in range(4)))
            assert [r.status_code for r in warm] == [200] * 4
            # PostgreSQL goes away while a request is in its transaction: that one fails...
            slow = asyncio.create_task(http.get("/count", params={"wait": 5}))
            await asyncio.sleep(1.0)
            assert await drop_connections() >= 1
            response = await slow
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            assert response.headers["content-type"] == "application/problem+json"
            assert "retry" in response.json()["detail"]
            # ...and the pooled connections it also broke are replaced at checkout.
            statuses = [(await http.get("/count")).status_code for _ in range(6)]
            assert statuses == [200] * 6
        finally:
            await engine.dispose()
