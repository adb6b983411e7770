"""The outbox relay in a process of its own (``relay_mode`` "process"): the enrollment service
served as deploy/ serves it (``tpp_plumbing.serve ... --workers 1``), its relay process
started, restarted and stopped by the supervisor, its commits published promptly through the
workers' NOTIFY, and readiness that tells whether any relay holds the lock."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from tpp_contracts.topics import TRAINEES
from tpp_plumbing.db.engine import asyncpg_dsn
from tpp_plumbing.serve import relay_process_wanted
from tpp_plumbing.settings import KafkaSettings
from tpp_testkit import auth_headers, free_port, topics_under

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
#: The enrollment app noting each build (``counted_enrollment``), served from here.
COUNTED = Path(__file__).resolve().parent / "counted"
#: Far longer than the tests wait: only a worker's NOTIFY gets an event out in time.
POLL_S = 60
LEASE_S = 2


@dataclass
class Replica:
    """A served enrollment replica: supervisor, one HTTP worker, the relay process."""

    process: subprocess.Popen[bytes]
    url: str
    dsn: str
    kafka: KafkaSettings
    metrics: Path
    log: Path
    builds: Path

    def builders(self) -> list[int]:
        """The process ids that built the app, once per build."""
        return [int(line) for line in self.builds.read_text().split()]

    def worker_pids(self) -> set[int]:
        """The HTTP workers' ids, as each noted it for its process metrics."""
        return {int(p.read_text()) for p in self.metrics.glob("worker-[0-9]*.pid")}

    def relay_pid(self) -> int | None:
        """The relay process's id, as it noted it for its process metrics."""
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.metrics / "worker-relay.pid").read_text())
            if Path(f"/proc/{pid}").exists():
                return pid
        return None

    def worker_pid(self) -> int:
        return int((self.metrics / "worker-0.pid").read_text())

    async def register(self, http: httpx.AsyncClient) -> str:
        """A new trainee (an event in the outbox); returns its id."""
        body = {
            "full_name": "Relay Trainee",
            "country": "NG",
            "gender": "female",
            "profession": "expert",
            "passport_number": f"R{uuid.uuid4().hex[:10].upper()}",
        }
        response = await http.post("/trainees", json=body, headers=auth_headers("operator"))
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def ready(self, http: httpx.AsyncClient) -> tuple[int, Any]:
        response = await http.get("/health/ready")
        return response.status_code, response.json()


async def until(check: Callable[[], Awaitable[object]], what: str, within: float = 60.0) -> float:
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > within:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def unsent(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        n: int = await conn.fetchval(
            "SELECT count(*) FROM outbox_message WHERE published_at IS NULL"
        )
    finally:
        await conn.close()
    return n


async def sent_after(dsn: str, trainee_id: str) -> float | None:
    """Seconds from the writer's commit to the relay's mark (Kafka acknowledged), if sent."""
    conn = await asyncpg.connect(dsn)
    try:
        lag = await conn.fetchval(
            "SELECT extract(epoch FROM published_at - created_at) FROM outbox_message"
            " WHERE key = $1",
            trainee_id,
        )
    finally:
        await conn.close()
    return None if lag is None else float(lag)


async def trainee_ids_on(kafka: KafkaSettings, wanted: set[str]) -> set[str]:
    """The trainee ids of the events on the trainees topic, once ``wanted`` are all there."""
    consumer = AIOKafkaConsumer(
        kafka.topic(TRAINEES.name),
        **kafka.client_options(),
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: set[str] = set()
    try:
        deadline = time.monotonic() + 30
        while not wanted <= found and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                found.update(r.key.decode() for r in records if r.key is not None)
    finally:
        await consumer.stop()
    return found


@pytest.fixture
async def replica(
    request: pytest.FixtureRequest,
    databases: Any,
    infrastructure: Any,
    kafka: KafkaSettings,
    tmp_path: Path,
) -> AsyncIterator[Replica]:
    """A replica in relay mode "process": set, or (param None) the default; or (param a
    tuple) in the mode given, with that many workers."""
    param = getattr(request, "param", "process")
    mode, workers = param if isinstance(param, tuple) else (param, 1)
    url = await databases.create("enrollment", f"_relayproc{uuid.uuid4().hex[:6]}")
    prefix = f"{kafka.topic_prefix}{uuid.uuid4().hex[:6]}."
    async with topics_under(infrastructure, prefix) as own:
        port = free_port()
        metrics = tmp_path / "metrics"
        metrics.mkdir()
        log = tmp_path / "replica.log"
        builds = tmp_path / "builds"
        env = (
            {k: v for k, v in os.environ.items() if k != "TPP_ENROLLMENT_RELAY_MODE"}
            | ({"TPP_ENROLLMENT_RELAY_MODE": mode} if mode else {})
            | infrastructure.kafka_env(own)
            | {
                "TPP_ENROLLMENT_DATABASE_URL": url,
                "TPP_ENROLLMENT_RELAY_POLL_INTERVAL_S": str(POLL_S),
                "TPP_ENROLLMENT_RELAY_LEASE_S": str(LEASE_S),
                "TPP_ENROLLMENT_SHUTDOWN_TIMEOUT_S": "10",
                "PROMETHEUS_MULTIPROC_DIR": str(metrics),
                "TPP_SERVE_START_BACKOFF_S": "0.2",
                "COUNTED_BUILDS": str(builds),
            }
        )
        with log.open("ab") as output:
            # Started once, not awaited: Popen's fork is quick.
            process = subprocess.Popen(  # noqa: S603, ASYNC220 - this interpreter, our module
                [
                    sys.executable,
                    "-m",
                    "tpp_plumbing.serve",
                    "counted_enrollment.app:create_app",  # tpp_enrollment's, counting
                    "--factory",
                    "--app-dir",
                    str(COUNTED),
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),  # 1 as Compose and Helm serve it: the relay process needs no flag
                    "--no-access-log",
                ],
                env=env,
                cwd=ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        served = Replica(
            process, f"http://127.0.0.1:{port}", asyncpg_dsn(url), own, metrics, log, builds
        )
        try:
            async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:

                async def ready() -> bool:
                    if process.poll() is not None:
                        raise AssertionError(f"the replica exited:\n{log.read_text()[-3000:]}")
                    with contextlib.suppress(httpx.TransportError):
                        return (await served.ready(http))[0] == 200
                    return False

                await until(ready, "the replica is ready", 90)
            yield served
        finally:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGCONT)
                    os.killpg(process.pid, signal.SIGKILL)
            await asyncio.to_thread(process.wait, 30)


@pytest.mark.parametrize("replica", ["process", None], ids=["set", "default"], indirect=True)
async def test_commits_are_published_promptly_by_the_relay_process(replica: Replica) -> None:
    async with httpx.AsyncClient(base_url=replica.url, timeout=10) as http:
        pid = replica.relay_pid()
        assert pid is not None
        assert pid != replica.worker_pid()
        # The relay's first round (after it took the lock) is behind us: from then on
        # only a wake-up publishes in time.
        first = await replica.register(http)
        await until(functools.partial(_sent, replica.dsn, first), "the first published", 15)
        await asyncio.sleep(0.5)
        trainees = [await replica.register(http) for _ in range(3)]
        for trainee in trainees:
            await until(functools.partial(_sent, replica.dsn, trainee), "published", 10)
        # Woken by the worker's NOTIFY, not by its poll (POLL_S).
        lags = [await sent_after(replica.dsn, t) for t in trainees]
        assert all(lag is not None and lag < 5 for lag in lags), lags
        assert set(trainees) <= await trainee_ids_on(replica.kafka, set(trainees))
        # A scrape of the worker shows the relay process: it leads, it published, its CPU.
        scrape = (await http.get("/metrics")).text
        assert "tpp_outbox_relay_leader 1.0" in scrape
        assert 'tpp_events_published_total{topic="enrollment.trainees.v1"' in scrape
        assert 'process_cpu_seconds_total{worker="relay"}' in scrape


async def test_each_process_of_the_replica_builds_the_app_once(replica: Replica) -> None:
    """A replica starts as fast as its slowest process imports the app: the worker and the
    relay process each build it once, the supervisor never."""
    relay = replica.relay_pid()
    assert relay is not None
    assert sorted(replica.builders()) == sorted([replica.worker_pid(), relay])
    assert replica.process.pid not in replica.builders()


@pytest.mark.parametrize("replica", [("loop", 2)], ids=["loop"], indirect=True)
async def test_a_replica_relaying_on_its_workers_starts_no_relay_process(
    replica: Replica,
) -> None:
    async with httpx.AsyncClient(base_url=replica.url, timeout=10) as http:
        trainee = await replica.register(http)
        await until(functools.partial(_sent, replica.dsn, trainee), "published", 15)
    workers = replica.worker_pids()
    assert len(workers) == 2

    async def both_built() -> bool:  # readiness needed one of them only
        return workers <= set(replica.builders())

    await until(both_built, "both workers built the app", 60)
    # Only the workers built the app: no relay process started, not even to exit.
    assert sorted(replica.builders()) == sorted(workers)
    assert "started relay" not in replica.log.read_text()
    assert not (replica.metrics / "worker-relay.pid").exists()


def test_the_supervisor_reads_the_relay_mode_from_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without importing the app: a service in process mode gets a relay process; one in
    another mode, one without an outbox (reporting), or an app that names no settings, none."""
    for service in ("registry", "enrollment", "reporting"):
        prefix = f"TPP_{service.upper()}_"
        monkeypatch.setenv(f"{prefix}DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1/none")
        monkeypatch.delenv(f"{prefix}RELAY_MODE", raising=False)
        monkeypatch.delenv(f"{prefix}RELAY_ENABLED", raising=False)
    assert relay_process_wanted("tpp_enrollment.app:create_app")
    assert relay_process_wanted("tpp_registry.app:create_app")
    assert not relay_process_wanted("tpp_reporting.app:create_app")
    monkeypatch.setenv("TPP_ENROLLMENT_RELAY_MODE", "thread")
    assert not relay_process_wanted("tpp_enrollment.app:create_app")
    assert not relay_process_wanted("operations_app:app")


async def test_readiness_fails_while_no_relay_holds_the_lock(replica: Replica) -> None:
    async with httpx.AsyncClient(base_url=replica.url, timeout=10) as http:
        pid = replica.relay_pid()
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # its lock session ends after LEASE_S of silence
        try:

            async def not_ready() -> bool:
                status, body = await replica.ready(http)
                return status == 503 and body["checks"]["relay"].startswith("failed")

            await until(not_ready, "not ready once the lock is free", LEASE_S + 10)
        finally:
            os.kill(pid, signal.SIGCONT)

        async def ready() -> bool:
            return (await replica.ready(http))[0] == 200

        await until(ready, "ready again once the relay leads", 30)
        trainee = await replica.register(http)
        await until(functools.partial(_sent, replica.dsn, trainee), "published", 15)


async def test_a_killed_relay_process_is_restarted_and_nothing_is_lost(replica: Replica) -> None:
    async with httpx.AsyncClient(base_url=replica.url, timeout=10) as http:
        first = replica.relay_pid()
        assert first is not None
        written = [await replica.register(http) for _ in range(5)]
        os.kill(first, signal.SIGKILL)
        # Commits go on while no relay runs; the restarted one publishes them.
        written += [await replica.register(http) for _ in range(5)]

        async def restarted() -> bool:
            pid = replica.relay_pid()
            return pid is not None and pid != first

        await until(restarted, "the supervisor starts another relay process", 30)
        written += [await replica.register(http) for _ in range(5)]

        async def all_sent() -> bool:
            return await unsent(replica.dsn) == 0

        await until(all_sent, "every committed event published", 30)
        # On Kafka at least once each (a duplicate is the consumers' inbox's to drop).
        assert set(written) <= await trainee_ids_on(replica.kafka, set(written))


async def test_sigterm_publishes_what_was_committed_before_it(replica: Replica) -> None:
    async with httpx.AsyncClient(base_url=replica.url, timeout=10) as http:
        pid = replica.relay_pid()
        assert pid is not None
        worker = replica.worker_pid()
        # Paused (well within its lease), the relay leaves these commits unsent...
        os.kill(pid, signal.SIGSTOP)
        try:
            written = [await replica.register(http) for _ in range(5)]
            assert await unsent(replica.dsn) == 5
            replica.process.send_signal(signal.SIGTERM)

            async def worker_gone() -> bool:
                return _gone(worker)

            await until(worker_gone, "the worker stops first", 20)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)  # ...until it is stopped after the worker
        code = await asyncio.to_thread(replica.process.wait, 30)
        assert code == 0
    assert await unsent(replica.dsn) == 0
    assert set(written) <= await trainee_ids_on(replica.kafka, set(written))


def _gone(pid: int) -> bool:
    """The process ended (a zombie, or reaped)."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return True


async def _sent(dsn: str, trainee_id: str) -> bool:
    return await sent_after(dsn, trainee_id) is not None
