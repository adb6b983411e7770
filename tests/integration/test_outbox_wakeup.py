"""Commits wake the relay (writers do not NOTIFY); a dropped connection fails one request."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from tpp_contracts.enrollment import EnrollmentAcceptedV1
from tpp_enrollment import tables as enrollment_tables
from tpp_plumbing.db import asyncpg_dsn, create_engine, session_factory
from tpp_plumbing.outbox import Outbox, OutboxRelay
from tpp_plumbing.problems import install_problem_handlers

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
                [envelope] = await outbox.add(db, [accepted()])
            await eventually(
                lambda e=envelope.id: published(e), within=5, what=f"publish after {where}"
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
        assert not await published(silent.id)
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


async def test_a_request_on_a_connection_postgresql_dropped_fails_once_with_503(
    databases: Any, infrastructure: Any
) -> None:
    url = await databases.create("enrollment", "_drop")
    engine = create_engine(url, pool_size=4)
    sessions = session_factory(engine)
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/count")
    async def count() -> dict[str, int]:
        async with sessions() as db:
            n = await db.scalar(text("SELECT count(*) FROM trainee"))
        return {"trainees": int(n or 0)}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        try:
            # Fill the pool with several connections, then drop them all as a restart would.
            warm = await asyncio.gather(*(http.get("/count") for _ in range(4)))
            assert [r.status_code for r in warm] == [200] * 4
            database = url.rsplit("/", 1)[1].split("?")[0]
            admin = await asyncpg.connect(infrastructure.admin_url)
            try:
                dropped = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = $1",
                    database,
                )
            finally:
                await admin.close()
            assert dropped >= 1
            statuses = []
            for _ in range(6):
                response = await http.get("/count")
                statuses.append(response.status_code)
                if response.status_code == 503:
                    assert response.headers["retry-after"] == "1"
                    assert response.headers["content-type"] == "application/problem+json"
                    assert "retry" in response.json()["detail"]
            # One request pays for the broken pool; the pool is renewed for the next ones.
            assert statuses == [503, 200, 200, 200, 200, 200]
        finally:
            await engine.dispose()
