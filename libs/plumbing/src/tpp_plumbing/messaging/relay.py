"""Outbox relay: publishes a service's outbox rows (``tpp_plumbing.messaging.outbox``) to Kafka.

A commit that wrote outbox rows wakes the relay: ``committed`` wakes it if it leads, or else
has the standby relay NOTIFY the leader from its own connection, outside any writer's
transaction (coalesced: at most one NOTIFY in flight). The leader also polls
(``poll_interval_s``), for writers elsewhere. A relay made with ``leads=False`` is only such a
notifier: it never tries for the lock (the HTTP workers of a service whose relay runs in a
process of its own, ``tpp_plumbing.serve``). Where a relay runs: ``relay_runner``.

The relay publishes rows in id order with an idempotent producer (acks=all) and then marks
them published, a round at a time (``tpp_plumbing.messaging.publish``); a crash between the
two republishes the rows, which the consumers' inbox absorbs. So does a PostgreSQL crash that
loses the last marks: the relay's own commits do not wait for the disk
(``synchronous_commit = off`` on its connection; the writers' do).
Only the holder of a PostgreSQL advisory lock publishes, so a service has one active relay
however many replicas run. The lock is a session lock on the relay's own connection, so it
lasts exactly as long as that session: a killed leader's session ends with its socket, and a
paused or cut-off one is ended by PostgreSQL after ``lease_s`` of silence (idle_session_timeout,
TCP keepalives, tcp_user_timeout); a standby then takes the lock. Fencing: rows are marked on
the lock's own session, so a deposed leader cannot mark; and a leader sends a batch only
within ``lease_s / 5`` of a query that proved its session alive (re-proving it if the batch
took longer), while a new leader waits 1.5 times that before its first batch, so the two
never publish at the same time (docs/decisions/0002-own-outbox-relay.md).

``stop`` publishes what is left (within a timeout) and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from tpp_plumbing.messaging.outbox import TABLE_NAME
from tpp_plumbing.messaging.publish import AfterPublish, LeadLostError, PublishRound, partition_of
from tpp_plumbing.observability.metrics import Metrics
from tpp_plumbing.settings import KafkaSettings

log = logging.getLogger(__name__)

CHANNEL = "tpp_outbox"
# One lock per database (each service owns its database), so a constant key is enough.
RELAY_LOCK_KEY = zlib.crc32(b"tpp-outbox-relay")
#: How long a woken relay waits for more rows before it reads.
LINGER_S = 0.005
#: Some session of this database holds the relay's lock (a bigint key: its high and low
#: halves in classid and objid, objsubid 1); pg_locks is readable by any role.
LOCK_HELD_SQL = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    f" AND classid = 0 AND objid = {RELAY_LOCK_KEY} AND objsubid = 1)"
)


class OutboxRelay(PublishRound):
    """Publishes outbox rows to Kafka in order; one active relay per database."""

    def __init__(
        self,
        *,
        dsn: str,
        kafka: KafkaSettings,
        batch_size: int = 1000,
        poll_interval_s: float = 1.0,
        retention_s: float = 24 * 3600,
        after_publish: AfterPublish | None = None,
        before_publish: AfterPublish | None = None,
        metrics: Metrics | None = None,
        service: str = "",
        lease_s: float = 5.0,
        leads: bool = True,
    ) -> None:
        self._dsn = dsn
        # False: a notifier, which never tries for the lock and only NOTIFYs the leader of
        # this process's commits (the HTTP workers of a service whose relay has a process of
        # its own, ``relay_mode`` "process").
        self._leads = leads
        self._kafka = kafka
        self._prefix = kafka.topic_prefix
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._retention_s = retention_s
        # Test hook: runs after the broker acknowledged a batch, before it is marked sent.
        self._after_publish = after_publish
        # Test hook: runs after a batch's rows were read, before any of them is sent.
        self._before_publish = before_publish
        self._lease_s = lease_s
        # A leader sends only within this of a query that proved its lock session alive...
        self._proof_s = lease_s / 5
        # ...and a new leader waits longer than that before it publishes: a deposed leader's
        # last batch (sent at most _proof_s after its lock was last proved, so before the new
        # leader got it) is out of the way.
        self._takeover_wait_s = self._proof_s * 1.5
        self._proved_at = 0.0
        self._metrics = metrics
        self._service = service
        self._wake = asyncio.Event()
        self._tell_leader = asyncio.Event()
        self._stopping = asyncio.Event()
        self._flush_deadline: float | None = None
        # The loop ``run`` runs on; other threads signal it through call_soon_threadsafe.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._signalled: set[asyncio.Event] = set()
        self.is_leader = False
        self.published = 0
        self.last_round_at: float | None = None
        self.heartbeat_at: float | None = None

    def alive(self, within_s: float) -> bool:
        """The relay made a round (or checked the lock) in the last ``within_s`` seconds."""
        if self.heartbeat_at is None:
            return False
        return time.monotonic() - self.heartbeat_at <= within_s

    async def run(self) -> None:
        """Relay until stopped, reconnecting after any failure of PostgreSQL or Kafka.

        ``committed``, ``wake`` and ``stop`` may be called from any thread meanwhile."""
        self._loop = asyncio.get_running_loop()
        try:
            await self._relay()
        finally:
            self._loop = None

    async def _relay(self) -> None:
        backoff = 0.2
        while True:
            try:
                finished = await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning(
                    "outbox relay failed; retrying in %.1fs",
                    backoff,
                    extra={"error_type": f"{type(error).__module__}.{type(error).__qualname__}"},
                )
                self._set_leader(False)
                finished = False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                backoff = min(backoff * 2, 5.0)
            else:
                backoff = 0.2
            if self._stopping.is_set():
                # Stopped while it had lost its lock or its connection: it tries again (once
                # a retry's wait) to flush, within the grace, unless another relay leads.
                left = (self._flush_deadline or 0.0) - time.monotonic()
                if finished or left <= 0:
                    return
                await asyncio.sleep(min(backoff, left))

    async def stop(self, grace_s: float) -> None:
        """Ask ``run`` to publish what is left (for up to ``grace_s`` seconds) and return."""
        self._flush_deadline = time.monotonic() + grace_s
        for event in (self._stopping, self._wake, self._tell_leader):
            self._signal(event)

    def _signal(self, event: asyncio.Event) -> None:
        """Set ``event`` from whatever thread calls: on the relay's loop, or scheduled there
        (at most once until it runs: a commit that finds it scheduled is seen by the read
        that follows it)."""
        loop = self._loop
        if loop is None or _running_loop() is loop:
            event.set()
        elif not event.is_set() and event not in self._signalled:
            self._signalled.add(event)
            with contextlib.suppress(RuntimeError):  # the loop closed: nothing waits any more
                loop.call_soon_threadsafe(self._set, event)

    def _set(self, event: asyncio.Event) -> None:
        self._signalled.discard(event)
        event.set()

    def _set_leader(self, leader: bool) -> None:
        self.is_leader = leader
        if self._metrics is not None:
            self._metrics.relay_leader.set(1 if leader else 0)

    def _beat(self) -> None:
        self.heartbeat_at = time.monotonic()

    async def _lead(self) -> bool:
        """Lead (or stand by, or notify) until stopped: True then (flushed, or another relay
        leads); False when the lock was lost."""
        # The relay's own commits (rows marked sent, the purge, a stand-by's NOTIFY) do not
        # wait for their WAL to reach the disk. A PostgreSQL crash can then forget the last
        # marks, and those rows are published again: a duplicate, as when the relay dies
        # between the broker's ack and the mark, which consumers' inboxes drop. The writers'
        # commits, which hold the events, still wait. It spares the disk 10-15% of its syncs
        # at 1,000 enrollments/s (pg_stat_wal: 0.79-0.97 syncs a command against 0.95-1.20).
        conn: asyncpg.Connection = await asyncpg.connect(
            self._dsn, server_settings=self._session_settings(), timeout=self._lease_s
        )
        try:
            # Another relay of this service may publish; stand by to take over.
            while not await self._take_lock(conn):
                self._beat()
                await self._stand_by(conn)
                if self._stopping.is_set():
                    return True
            log.info("outbox relay took the lead", extra={"service": self._service})
            await conn.add_listener(CHANNEL, self._on_notify)
            producer = AIOKafkaProducer(
                **self._kafka.client_options(),
                acks="all",
                enable_idempotence=True,
                linger_ms=2,
                max_batch_size=256 * 1024,
                partitioner=partition_of,
            )
            await producer.start()
            self._set_leader(True)
            try:
                # A deposed leader may still send the batch it had proved its lock for.
                await asyncio.sleep(self._takeover_wait_s)
                await self._publish_loop(conn, producer)  # until stopped
            finally:
                self._set_leader(False)
                await producer.stop()  # waits for in-flight sends
            return True
        except LeadLostError:
            log.warning("outbox relay lost its lock; standing by", extra={"service": self._service})
            conn.terminate()
            return False
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), self._lease_s)

    async def _take_lock(self, conn: asyncpg.Connection) -> bool:
        """Try for the lock; a notifier only asks something, which keeps its session from the
        idle timeout."""
        if not self._leads:
            await conn.fetchval("SELECT 1", timeout=self._lease_s)
            return False
        return bool(
            await conn.fetchval(
                "SELECT pg_try_advisory_lock($1)", RELAY_LOCK_KEY, timeout=self._lease_s
            )
        )

    def _session_settings(self) -> dict[str, str]:
        """The lock connection's session: PostgreSQL ends it (and so frees the lock) after
        ``lease_s`` of silence, whether the relay is paused (idle_session_timeout), its host
        is gone (keepalives) or its packets go unanswered (tcp_user_timeout)."""
        lease_ms = int(self._lease_s * 1000)
        probe_s = max(1, int(self._lease_s / 5))
        return {
            # The relay's own commits do not wait for the disk (see _lead).
            "synchronous_commit": "off",
            "idle_session_timeout": str(lease_ms),
            "tcp_keepalives_idle": str(probe_s),
            "tcp_keepalives_interval": str(probe_s),
            "tcp_keepalives_count": "3",
            "tcp_user_timeout": str(lease_ms),
        }

    async def _stand_by(self, conn: asyncpg.Connection) -> None:
        """Until the next try for the lock, NOTIFY the leader of this process's commits."""
        loop = asyncio.get_running_loop()
        # Often enough to keep the session from its idle timeout, and to take over in time.
        deadline = loop.time() + min(self._poll_interval_s, self._proof_s)
        while not self._stopping.is_set() and (left := deadline - loop.time()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._tell_leader.wait(), left)
            if self._tell_leader.is_set() and not self._stopping.is_set():
                self._tell_leader.clear()  # commits from now on need another NOTIFY
                await conn.execute(f"NOTIFY {CHANNEL}", timeout=self._lease_s)

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    async def _publish_loop(self, conn: asyncpg.Connection, producer: AIOKafkaProducer) -> None:
        loop = asyncio.get_running_loop()
        last_purge = 0.0
        acked: list[asyncpg.Record] = []
        while True:
            self._wake.clear()
            rows = await self._publish(conn, producer, mark=acked)
            count = len(rows)
            self.last_round_at = loop.time()
            self._beat()
            acked = rows
            if (count < self._batch_size and not self._wake.is_set()) or self._stopping.is_set():
                # Nothing known to follow: marked now, not with the next round's read.
                await self._mark(conn, acked)
                acked = []
            if self._stopping.is_set():
                deadline = self._flush_deadline or time.monotonic()
                if count < self._batch_size or time.monotonic() >= deadline:
                    return  # flushed (or out of time: the rest goes out after the restart)
                continue
            if loop.time() - last_purge > 60:
                await conn.execute(
                    f"DELETE FROM {TABLE_NAME}"
                    " WHERE published_at < now() - make_interval(secs => $1)",
                    self._retention_s,
                    timeout=self._lease_s,
                )
                last_purge = loop.time()
            if count < self._batch_size:
                await self._idle(conn)
                if not self._stopping.is_set():
                    # Woken by one commit, wait for the next few: a round per commit costs
                    # the worker's CPU and slows its HTTP answers (docs/decisions/0007).
                    await asyncio.sleep(LINGER_S)

    async def _idle(self, conn: asyncpg.Connection) -> None:
        """Wait for a wake-up or the poll, proving the lock session alive meanwhile (it would
        otherwise reach its idle timeout and lose the lock)."""
        loop = asyncio.get_running_loop()
        poll_at = loop.time() + self._poll_interval_s
        while (left := poll_at - loop.time()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(left, self._proof_s))
            if self._wake.is_set():
                return
            await self._prove(conn)
            self._beat()

    def wake(self) -> None:
        """Make the relay look for rows now (if it leads)."""
        self._signal(self._wake)

    def committed(self) -> None:
        """Outbox rows were committed in this process: publish them now.

        The leader wakes; a standby relay NOTIFYs the leader (coalesced, own connection).
        """
        self._signal(self._wake if self.is_leader else self._tell_leader)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def backlog(conn: asyncpg.Connection) -> tuple[int, float | None]:
    """Unsent rows and the age in seconds of the oldest one."""
    row = await conn.fetchrow(
        f"SELECT count(*) AS n, extract(epoch FROM now() - min(created_at)) AS age"
        f" FROM {TABLE_NAME} WHERE published_at IS NULL"
    )
    assert row is not None
    return int(row["n"]), (float(row["age"]) if row["age"] is not None else None)
