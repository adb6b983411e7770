"""Graceful shutdown: SIGTERM mid-batch loses nothing and applies nothing twice; relay flush."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from tpp_contracts.envelope import encode, wrap
from tpp_contracts.topics import ALL as ALL_TOPICS
from tpp_contracts.topics import ENROLLMENTS
from tpp_enrollment.store import tables as enrollment_tables
from tpp_plumbing.db.engine import asyncpg_dsn, create_engine, session_factory
from tpp_plumbing.messaging.outbox import Outbox
from tpp_plumbing.runtime import Runtime
from tpp_plumbing.settings import KafkaSettings, ServiceSettings
from tpp_testkit import auth_headers

from .operations_support import accepted, own_topics, produce

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SESSIONS_COUNT, PER_SESSION = 20, 60  # 1,200 events, 40 per batch: 30 batches of >= 0.5 s


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_reporting(url: str, kafka_env: dict[str, str], log: Path) -> tuple[Any, int]:
    """The (slowed) reporting service under uvicorn, as its own process."""
    port = free_port()
    env = (
        os.environ
        | kafka_env
        | {
            "TPP_REPORTING_DATABASE_URL": url,
            "TPP_REPORTING_BATCH_SIZE": "40",
            "TPP_REPORTING_SHUTDOWN_TIMEOUT_S": "15",
        }
    )
    with log.open("ab") as output:
        process = subprocess.Popen(  # noqa: S603 - our own app under uvicorn, fixed arguments
            [
                sys.executable,
                "-m",
                "uvicorn",
                "operations_app:create_app",
                "--factory",
                "--app-dir",
                str(ROOT / "tests" / "integration"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return process, port


async def applied_count(url: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM inbox_message")
    finally:
        await conn.close()
    return count


async def committed_count(kafka: KafkaSettings, group: str) -> int:
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(max(o.offset, 0) for o in offsets.values())


async def stop_with_sigterm(process: Any, log: Path, within: float) -> None:
    """SIGTERM, then wait for a clean exit (uvicorn re-raises the signal once shut down)."""
    process.send_signal(signal.SIGTERM)
    try:
        code = await asyncio.to_thread(process.wait, within)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"the service did not exit within {within}s of SIGTERM")
    assert code in (0, -signal.SIGTERM)
    assert "Application shutdown complete." in await asyncio.to_thread(log.read_text)


async def test_sigterm_during_a_batch_loses_nothing_and_applies_nothing_twice(
    infrastructure: Any, databases: Any, eventually: Any, tmp_path: Path
) -> None:
    kafka = infrastructure.kafka
    url = await databases.create("reporting", "_sigterm")
    names = [t.name for t in ALL_TOPICS]
    async with own_topics(infrastructure, *names, partitions=6) as prefix:
        sessions = [uuid.uuid4() for _ in range(SESSIONS_COUNT)]
        topic = prefix + ENROLLMENTS.name
        await produce(
            kafka,
            topic,
            [
                (str(s).encode(), encode(wrap(accepted(s), source="/tests")))
                for s in sessions
                for _ in range(PER_SESSION)
            ],
        )
        total = SESSIONS_COUNT * PER_SESSION
        log = tmp_path / "reporting.log"
        kafka_env = infrastructure.kafka_env(kafka.with_prefix(prefix))
        first, _ = start_reporting(url, kafka_env, log)
        try:

            async def in_full_swing() -> bool:
                return await applied_count(url) >= 120

            # A deadline, not a pause: a loaded machine takes a while to start the process.
            await eventually(in_full_swing, within=90, what="the first batches applied")
            await stop_with_sigterm(first, log, within=20)
        finally:
            if first.poll() is None:
                first.kill()
                await asyncio.to_thread(first.wait)  # reaped: no zombie, no ResourceWarning
        text = log.read_text()
        assert "stopping: waiting for in-flight events" in text  # SIGTERM came mid-batch
        assert "abandoned" not in text
        applied_before = await applied_count(url)
        # Every applied event's offset was committed, and nothing else was.
        assert await committed_count(kafka, prefix + "reporting") == applied_before
        assert applied_before < total, applied_before  # it really stopped in the middle

        second, port = start_reporting(url, kafka_env, log)
        try:

            async def all_applied() -> bool:
                return await applied_count(url) == total

            # Starting uvicorn again, then >= 15 s of slowed batches, on a loaded machine.
            await eventually(all_applied, within=120, what="the restarted service catches up")
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", headers=auth_headers("operator")
            ) as client:
                for session_id in sessions:
                    report = (await client.get(f"/reports/sessions/{session_id}")).json()
                    assert report["enrolled"] == PER_SESSION  # none lost, none twice
                metrics = (await client.get("/metrics")).text
            # The restarted consumer found no event applied but uncommitted: no duplicates.
            assert 'outcome="duplicate"' not in metrics
            await stop_with_sigterm(second, log, within=20)
        finally:
            if second.poll() is None:
                second.kill()
                await asyncio.to_thread(second.wait)  # reaped: no zombie, no ResourceWarning
        assert await committed_count(kafka, prefix + "reporting") == total


async def test_stopping_flushes_the_relay(
    infrastructure: Any, databases: Any, eventually: Any
) -> None:
    url = await databases.create("enrollment", "_flush")
    engine = create_engine(url)
    async with own_topics(infrastructure, ENROLLMENTS.name) as prefix:
        try:
            outbox = Outbox(enrollment_tables.outbox, source="/enrollment")
            settings = ServiceSettings(
                database_url=url,
                # The relay publishes as the enrollment service's own principal.
                kafka=infrastructure.as_role(
                    "enrollment", infrastructure.kafka.with_prefix(prefix)
                ),
                relay_batch_size=100,
            )
            runtime = Runtime(settings, name="enrollment")
            await runtime.start()
            async with session_factory(engine)() as db, db.begin():
                await outbox.add(db, [accepted(uuid.uuid4()) for _ in range(3000)])

            async def publishing() -> bool:
                return runtime.relay.published > 0

            # Told to stop in the middle of publishing 30 rounds: it finishes them first.
            await eventually(publishing, what="the relay starts publishing")
            assert runtime.relay.published < 3000
            await runtime.stop()
            conn = await asyncpg.connect(asyncpg_dsn(url))
            try:
                unsent = await conn.fetchval(
                    "SELECT count(*) FROM outbox_message WHERE published_at IS NULL"
                )
            finally:
                await conn.close()
            assert unsent == 0
            assert runtime.relay.published == 3000
        finally:
            await engine.dispose()
