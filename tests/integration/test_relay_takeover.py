"""One relay per service across replicas: takeover within 10 s, and a deposed leader fenced.

Each replica's relay runs in its own process (``relay_replica.py``) against one database.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from tpp_contracts.enrollment import EnrollmentAcceptedV1
from tpp_contracts.envelope import decode
from tpp_contracts.topics import ENROLLMENTS
from tpp_enrollment.store import tables as enrollment_tables
from tpp_plumbing.db.engine import asyncpg_dsn, create_engine, session_factory
from tpp_plumbing.messaging.outbox import Outbox
from tpp_plumbing.settings import KafkaSettings
from tpp_testkit import topics_under

pytestmark = pytest.mark.integration

REPLICA = Path(__file__).with_name("relay_replica.py")
TAKEOVER_S = 10.0  # the bound


@dataclass
class Replica:
    """A relay process and the JSON lines it printed."""

    name: str
    process: asyncio.subprocess.Process
    lines: list[dict[str, Any]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(json.loads(raw))

    def said(self, event: str, since: int = 0) -> list[dict[str, Any]]:
        return [line for line in self.lines[since:] if line["event"] == event]

    def published(self) -> set[int]:
        return {i for line in self.said("published") for i in line["ids"]}

    @property
    def role(self) -> str | None:
        roles = [line["event"] for line in self.lines if line["event"] in ("leader", "standby")]
        return roles[-1] if roles else None


@contextlib.asynccontextmanager
async def replicas(
    dsn: str, kafka: KafkaSettings, env: dict[str, str], trap: Path, n: int
) -> AsyncIterator[list[Replica]]:
    """``n`` relay processes, the first one started (and leading) before the others."""
    started: list[Replica] = []
    try:
        for i in range(n):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(REPLICA),
                dsn,
                str(trap),
                stdout=asyncio.subprocess.PIPE,
                env=os.environ | env,
            )
            replica = Replica(f"replica{i}", process)
            replica.reader = asyncio.create_task(replica.read())
            started.append(replica)
            want = "leader" if i == 0 else "standby"
            await until(functools.partial(_has_role, replica, want), f"{replica.name} is {want}")
        yield started
    finally:
        for replica in started:
            if replica.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    replica.process.send_signal(signal.SIGCONT)
                    replica.process.kill()
                await replica.process.wait()
            if replica.reader is not None:
                await asyncio.wait({replica.reader}, timeout=5)


def _has_role(replica: Replica, role: str) -> bool:
    return replica.role == role


async def until(
    check: Callable[[], object | Awaitable[object]], what: str, within: float = 30.0
) -> float:
    """Poll ``check`` (sync or async) until true; returns the seconds waited."""
    start = time.monotonic()
    while not await _result(check()):
        if time.monotonic() - start > within:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def _result(value: object) -> object:
    return await value if inspect.isawaitable(value) else value


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


class Writer:
    """Commits enrollment events to the outbox; returns their event and row ids."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)
        self.sessions = session_factory(self.engine)
        self.outbox = Outbox(enrollment_tables.outbox, source="/enrollment")
        self.event_ids: list[uuid.UUID] = []

    async def write(self, conn: asyncpg.Connection, n: int) -> list[int]:
        async with self.sessions() as db, db.begin():
            ids = await self.outbox.add(db, [accepted() for _ in range(n)])
        self.event_ids.extend(ids)
        rows = await conn.fetch("SELECT id FROM outbox_message WHERE event_id = ANY($1)", ids)
        return sorted(row["id"] for row in rows)


async def event_ids_on(kafka: KafkaSettings, expected: int) -> list[uuid.UUID]:
    """Every event id on the enrollments topic (waits for ``expected``, then 2 s more)."""
    consumer = AIOKafkaConsumer(
        kafka.topic(ENROLLMENTS.name),
        **kafka.client_options(),
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: list[uuid.UUID] = []
    try:
        deadline = time.monotonic() + 30
        quiet_until: float | None = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                found.extend(decode(r.value).envelope.id for r in records)
            if len(found) >= expected and quiet_until is None:
                quiet_until = time.monotonic() + 2.0  # room for a (wrong) late copy
            if quiet_until is not None and time.monotonic() > quiet_until:
                break
    finally:
        await consumer.stop()
    return found


async def all_marked(conn: asyncpg.Connection) -> bool:
    n: int = await conn.fetchval("SELECT count(*) FROM outbox_message WHERE published_at IS NULL")
    return n == 0


@pytest.fixture
async def setup(
    kafka: KafkaSettings, databases: Any, infrastructure: Any, tmp_path: Path
) -> AsyncIterator[tuple[str, KafkaSettings, dict[str, str], Path]]:
    """A fresh enrollment database and its own topic prefix (one enrollments topic each)."""
    url = await databases.create("enrollment", f"_takeover{uuid.uuid4().hex[:6]}")
    # A topic of its own per test: the topic read at the end holds this test's events only.
    async with topics_under(infrastructure, f"{kafka.topic_prefix}{uuid.uuid4().hex[:6]}.") as k:
        yield url, k, infrastructure.kafka_env(k), tmp_path / "trap"


@pytest.mark.parametrize("relay_on", ["loop", "thread"])
async def test_a_paused_leader_is_replaced_and_fenced_when_it_resumes(
    setup: tuple[str, KafkaSettings, dict[str, str], Path], relay_on: str
) -> None:
    url, kafka, env, trap = setup
    env = env | {"RELAY_REPLICA_THREAD": "1" if relay_on == "thread" else "0"}
    writer = Writer(url)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        async with replicas(asyncpg_dsn(url), kafka, env, trap, 2) as (old, new):
            await writer.write(conn, 3)
            await until(lambda: len(old.published()) == 3, "the leader publishes")
            await until(lambda: all_marked(conn), "the leader marks them sent")
            # The leader reads the next batch and is paused before it sends it.
            trap.write_text(str(await conn.fetchval("SELECT max(id) + 1 FROM outbox_message")))
            stuck = await writer.write(conn, 5)
            await until(lambda: old.said("pausing"), "the leader reads the batch and pauses")
            paused_at = old.said("pausing")[0]["at"]
            await until(lambda: new.role == "leader", "the standby takes over", TAKEOVER_S + 5)
            await until(
                lambda: set(stuck) <= new.published(), "the new leader publishes", TAKEOVER_S + 5
            )
            took = min(
                line["at"] for line in new.said("published") if set(line["ids"]) & set(stuck)
            )
            print(f"\npaused leader: batch published by the new leader {took - paused_at:.1f}s")
            assert took - paused_at < TAKEOVER_S
            before = len(old.lines)
            old.process.send_signal(signal.SIGCONT)  # it wakes with the batch it had read
            await until(lambda: old.role == "standby", "the old leader stands by")
            later = await writer.write(conn, 3)
            await until(lambda: set(later) <= new.published(), "the new leader goes on")
            assert old.said("published", since=before) == []  # neither sent nor marked
            await until(lambda: all_marked(conn), "every row marked sent")
        on_topic = await event_ids_on(kafka, len(writer.event_ids))
        assert sorted(on_topic) == sorted(writer.event_ids)  # each event once
    finally:
        await conn.close()
        await writer.engine.dispose()


@pytest.mark.parametrize("fault", ["kill -9", "connection lost"])
async def test_a_killed_or_disconnected_leader_is_replaced_within_10_s(
    setup: tuple[str, KafkaSettings, dict[str, str], Path], infrastructure: Any, fault: str
) -> None:
    url, kafka, env, trap = setup
    writer = Writer(url)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        async with replicas(asyncpg_dsn(url), kafka, env, trap, 2) as (old, new):
            await writer.write(conn, 2)
            await until(lambda: len(old.published()) == 2, "the leader publishes")
            await until(lambda: all_marked(conn), "the leader marks them sent")
            faulted_at = time.time()
            if fault == "kill -9":
                old.process.kill()
            else:
                admin = await asyncpg.connect(infrastructure.admin_url)
                try:
                    ended = await admin.fetchval(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks"
                        " WHERE locktype = 'advisory' AND granted"
                        " AND database = (SELECT oid FROM pg_database WHERE datname = $1)",
                        url.rsplit("/", 1)[1].split("?")[0],
                    )
                finally:
                    await admin.close()
                assert ended == 1
            later = await writer.write(conn, 3)
            # After a lost connection, either replica may take the lock first.
            both = (old, new) if fault == "connection lost" else (new,)
            await until(
                lambda: set(later) <= set().union(*(r.published() for r in both)),
                "takeover",
                TAKEOVER_S + 5,
            )
            took = min(
                line["at"]
                for r in both
                for line in r.said("published")
                if set(line["ids"]) & set(later)
            )
            print(f"\n{fault}: the next events published after {took - faulted_at:.1f}s")
            assert took - faulted_at < TAKEOVER_S
            await until(lambda: all_marked(conn), "every row marked sent")
        on_topic = await event_ids_on(kafka, len(writer.event_ids))
        assert sorted(on_topic) == sorted(writer.event_ids)
    finally:
        await conn.close()
        await writer.engine.dispose()
