"""Hot command paths without the ORM: transactions on raw asyncpg connections.

A command through an ORM session pays, besides its statements, for the session, the
greenlet bridge and the statement compilation: on an enrollment, more than its statements
cost (docs/decisions/0003-raw-asyncpg-hot-path.md). The busiest commands (an enrollment, a
new session) run here; the rest stay on the ORM, where they are easier to read.

A ``RawTransaction`` is what ``Outbox.add`` and ``idempotency.mark_committed`` accept besides
an ``AsyncSession``: the events are written in the command's transaction and the relay is
woken after the commit, exactly as for a session. Statements use asyncpg's ``$1`` parameters.
A transaction begun inside a recorded span is traced like the engine's (``telemetry``): one
CLIENT span, its statements as events (SQL text, never parameters).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tpp_plumbing.db.reads import LazyPool
from tpp_plumbing.observability import telemetry
from tpp_plumbing.observability.sql_tracing import sql_operation

log = logging.getLogger(__name__)


async def _end_open_transaction(conn: asyncpg.Connection) -> None:
    """A connection comes back outside any transaction (a cancelled commit could leave one);
    it holds no other session state (no SET, LISTEN, advisory locks)."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class RawTransaction:
    """One transaction on a raw connection; statements in ``$n`` parameter style."""

    def __init__(
        self, conn: asyncpg.Connection | PoolConnectionProxy[Any], span: trace.Span | None
    ) -> None:
        self.conn = conn
        #: Set by ``Outbox.add``: the relay is woken once this transaction commits.
        self.wrote_outbox = False
        self._span = span
        self._statements = 0

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        """The first row of a statement (None when it returns none)."""
        if self._span is None:
            return await self.conn.fetchrow(query, *args)
        started = time.time_ns()
        try:
            row = await self.conn.fetchrow(query, *args)
        except Exception as error:
            self._failed(query, started, error)
            raise
        self._ran(query, started)
        return row

    async def execute(self, query: str, *args: Any) -> None:
        """Run a statement for its effect."""
        if self._span is None:
            await self.conn.execute(query, *args)
            return
        started = time.time_ns()
        try:
            await self.conn.execute(query, *args)
        except Exception as error:
            self._failed(query, started, error)
            raise
        self._ran(query, started)

    def _ran(self, query: str, started: int) -> None:
        assert self._span is not None
        self._statements += 1
        self._span.add_event(
            sql_operation(query),
            {"db.statement": query, "db.duration_ms": (time.time_ns() - started) / 1e6},
            timestamp=started,
        )

    def _failed(self, query: str, started: int, error: Exception) -> None:
        assert self._span is not None
        self._statements += 1
        self._span.add_event(
            f"{sql_operation(query)} failed",
            {"db.statement": query, "exception.type": type(error).__name__},
            timestamp=started,
        )
        self._span.set_status(Status(StatusCode.ERROR))

    def finish(self, outcome: str) -> None:
        """End the span: ``COMMIT`` or ``ROLLBACK`` of a transaction, "" for statements that
        committed each on its own (the pool calls this)."""
        if self._span is not None:
            if outcome:
                self._span.update_name(f"transaction {outcome}" if self._statements else outcome)
            self._span.set_attribute("db.statement_count", self._statements)
            self._span.end()


class CommandPool:
    """Raw asyncpg connections for the hottest commands' transactions, opened on first use."""

    def __init__(
        self,
        dsn: str,
        *,
        max_size: int,
        after_outbox_commit: Callable[[], None] | None = None,
        database: str = "",
    ) -> None:
        self._pool = LazyPool(dsn, max_size=max_size, reset=_end_open_transaction)
        self._after_outbox_commit = after_outbox_commit
        self._attributes = {"db.system": "postgresql", "db.name": database}

    @contextlib.asynccontextmanager
    async def transaction(self, *, first: str = "") -> AsyncIterator[RawTransaction]:
        """A transaction committed when the block ends, rolled back if it raises.

        ``first``: a statement without parameters (a lock, say) sent in one round trip with
        the BEGIN. A database outage raises asyncpg's (or the socket's) own error, which
        ``db.is_database_outage`` recognizes: the services answer 503 with Retry-After.
        """
        async with self._connection(begin=True, first=first) as tx:
            yield tx

    @contextlib.asynccontextmanager
    async def statements(self) -> AsyncIterator[RawTransaction]:
        """Statements on one connection that each commit on their own (no BEGIN, no COMMIT).

        For a command whose writes are all in one statement (optimistic concurrency: read,
        decide, then write only if nothing moved meanwhile): it saves the two round trips of
        a transaction. Outbox rows written this way wake the relay as a transaction's do.
        """
        async with self._connection(begin=False) as tx:
            yield tx

    @contextlib.asynccontextmanager
    async def _connection(self, *, begin: bool, first: str = "") -> AsyncIterator[RawTransaction]:
        pool = await self._pool.get()
        async with pool.acquire() as conn:
            span = None
            if trace.get_current_span().is_recording():
                span = telemetry.tracer().start_span(
                    "transaction" if begin else "statements",
                    kind=SpanKind.CLIENT,
                    attributes=self._attributes,
                )
            tx = RawTransaction(conn, span)
            outcome = "ROLLBACK"
            try:
                if begin and first:
                    # One simple-protocol query; a transaction left open by a failure is
                    # rolled back when the pool takes the connection back.
                    await conn.execute(f"BEGIN; {first}")
                    yield tx
                    if await conn.execute("COMMIT") != "COMMIT":  # it was aborted
                        raise RuntimeError("the transaction was rolled back")
                elif begin:
                    async with conn.transaction():
                        yield tx
                else:
                    yield tx
                outcome = "COMMIT"
            finally:
                tx.finish(outcome if begin else "")
        if tx.wrote_outbox and self._after_outbox_commit is not None:
            try:
                self._after_outbox_commit()
            except Exception:  # the commit stands; the relay's polling publishes the rows
                log.exception("outbox wake-up failed")

    async def execute(self, query: str, *args: Any) -> None:
        """Run one statement on its own: it commits by itself (no BEGIN and COMMIT around it).

        For a write that is whole in one statement, such as a batch of audit rows.
        """
        pool = await self._pool.get()
        async with pool.acquire() as conn:
            await conn.execute(query, *args)

    async def close(self) -> None:
        """Close the connections."""
        await self._pool.close()
