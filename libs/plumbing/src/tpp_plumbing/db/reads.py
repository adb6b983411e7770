"""Hot read paths without the ORM: a small asyncpg pool for one-statement reads, and LISTEN.

A list or catalogue page is one SELECT. Through an ORM session it also paid for the pool's
pre-ping (``BEGIN; ; ROLLBACK``: three round trips), greenlet switches and result
processing, which cost several times the query itself (bench/RESULTS.md). Here a read
borrows a raw connection (asyncpg notices a connection closed by a restarted PostgreSQL and
opens a new one), runs one statement in autocommit (a statement is its own snapshot) and
gives it back without a reset round trip: nothing on it changes session state. ``snapshot``
lends one for several statements in one read-only transaction (one snapshot).

``listen`` keeps one extra connection LISTENing on a channel and calls back on every
notification, and on every (re)connection or loss, since notifications sent meanwhile are
lost: a cache invalidated this way stays correct across workers and restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
from opentelemetry import trace

from tpp_plumbing.db.engine import is_database_outage
from tpp_plumbing.observability import telemetry

log = logging.getLogger(__name__)

#: How often a listening connection is checked (a lost socket is noticed at once anyway).
LISTEN_CHECK_S = 10.0
#: Wait before connecting again after a failure.
RETRY_S = 1.0


class DatabaseUnavailableError(ConnectionError):
    """A read found PostgreSQL unreachable or its connection gone (an OSError: 503)."""


async def _no_reset(_: asyncpg.Connection) -> None:
    """Connections hold no session state (no SET, LISTEN, locks): nothing to reset."""


class LazyPool:
    """An asyncpg pool opened on first use (a service starts while PostgreSQL is down)."""

    def __init__(
        self, dsn: str, *, max_size: int, reset: Callable[[asyncpg.Connection], Awaitable[None]]
    ) -> None:
        self._dsn = dsn
        self._max_size = max_size
        self._reset = reset
        self._pool: asyncpg.Pool | None = None
        self._opening: asyncio.Lock | None = None

    async def get(self) -> asyncpg.Pool:
        """The pool, opened by the first caller (the others wait for it)."""
        if self._pool is None:
            if self._opening is None:
                self._opening = asyncio.Lock()
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn, min_size=1, max_size=self._max_size, reset=self._reset
                    )
        return self._pool

    async def close(self) -> None:
        """Close the connections (the pool opens again on next use)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pool.close(), 5)


class ReadPool:
    """Raw asyncpg connections for single-statement reads, opened on first use."""

    def __init__(self, dsn: str, *, max_size: int) -> None:
        self._dsn = dsn
        self._pool = LazyPool(dsn, max_size=max_size, reset=_no_reset)
        self._listeners: dict[str, asyncio.Task[None]] = {}
        self._listening: set[str] = set()

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """The rows of one statement (parameters ``$1``...); a SQL span in a recorded trace.

        Raises:
            DatabaseUnavailableError: PostgreSQL could not be reached or dropped the
                connection (the services answer 503 with Retry-After; the next read gets a
                new connection).
        """
        try:
            pool = await self._pool.get()
            if trace.get_current_span().is_recording():
                verb = query.split(None, 1)[0].upper()
                with telemetry.tracer().start_as_current_span(
                    verb,
                    kind=trace.SpanKind.CLIENT,
                    attributes={"db.system": "postgresql", "db.statement": query},
                ):
                    return await pool.fetch(query, *args)
            return await pool.fetch(query, *args)
        except Exception as error:
            if is_database_outage(error):
                raise DatabaseUnavailableError(type(error).__name__) from error
            raise

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy[Any]]:
        """A connection in a read-only REPEATABLE READ transaction: several statements that
        see one snapshot of the database (a report and the state it was computed from).

        Raises:
            DatabaseUnavailableError: as ``fetch``.
        """
        try:
            pool = await self._pool.get()
            async with (
                pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                yield conn
        except Exception as error:
            if is_database_outage(error):
                raise DatabaseUnavailableError(type(error).__name__) from error
            raise

    # ------------------------------------------------------------------ notifications

    def listening(self, channel: str) -> bool:
        """Whether notifications on ``channel`` are being received right now."""
        return channel in self._listening

    def listen(self, channel: str, on_change: Callable[[], None]) -> None:
        """Start (once) receiving ``channel``; ``on_change()`` on each notification or gap."""
        if channel not in self._listeners:
            self._listeners[channel] = asyncio.create_task(
                self._listen(channel, on_change), name=f"listen-{channel}"
            )

    async def _listen(self, channel: str, on_change: Callable[[], None]) -> None:
        while True:
            try:
                await self._listen_once(channel, on_change)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning(
                    "listening connection lost",
                    extra={"channel": channel, "error_type": type(error).__name__},
                )
            await asyncio.sleep(RETRY_S)

    async def _listen_once(self, channel: str, on_change: Callable[[], None]) -> None:
        """One listening connection, until it is lost (or its check fails)."""
        conn = await asyncpg.connect(self._dsn)
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _: lost.set())
            await conn.add_listener(channel, lambda *_: on_change())
            self._listening.add(channel)
            on_change()  # whatever was sent while not listening
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), LISTEN_CHECK_S)
                if not lost.is_set():
                    await conn.fetchval("SELECT 1")
        finally:
            if channel in self._listening:
                self._listening.discard(channel)
                on_change()
            if not conn.is_closed():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)

    async def close(self) -> None:
        """Stop listening and close the connections."""
        for task in self._listeners.values():
            task.cancel()
        for task in self._listeners.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._listeners.clear()
        self._listening.clear()
        await self._pool.close()
