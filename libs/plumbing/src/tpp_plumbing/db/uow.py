"""Unit of work: one use case's transaction and what it emits, committed together.

    async with units() as uow:                  # one transaction (an ORM session)
        row = await store.get(uow.db, some_id)  # stores: plain queries on ``uow.db``
        await store.set_status(uow.db, ...)
        uow.emit(event)                         # an outbox row, in the same commit
    # committed: the events, and the request's Idempotency-Key marked COMMITTED with them

    async with units.read() as db:              # a use case that only reads
        row = await store.get(db, some_id)

The request's audit row is written by the audit middleware once the answer is known,
except on the fast path below, where it joins the command's own statement.

The fast path (``UnitsOfWork.fast``, the busiest commands): a raw asyncpg connection
(``tpp_plumbing.db.writes``) and a command whose writes fit in one statement, a ``Fused`` write
of data-modifying CTEs. ``commit(write)`` appends the emitted events' outbox insert, the
Idempotency-Key mark and the audit row to that statement, each written only if the command
wrote (``Fused.wrote`` returned a row): one statement that commits on its own, with no
``BEGIN``/``COMMIT`` round trips and no second commit for the audit row
(docs/decisions: raw asyncpg hot path). Parameters are numbered here, in one place.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tpp_contracts.envelope import Envelope, Event

from tpp_plumbing.db.writes import CommandPool, RawTransaction
from tpp_plumbing.messaging.outbox import Outbox
from tpp_plumbing.web import audit, idempotency


@dataclass(frozen=True, slots=True)
class Fused:
    """A command's writes as the data-modifying CTEs of one statement.

    ``ctes``: ``name AS (...), ...`` with parameters ``$1`` to ``$len(args)``; ``wrote``: the
    CTE whose rows say the command wrote (the events, the mark and the audit row are written
    only with it); ``returning``: the statement's final ``SELECT``. ``conflicts``: a unique
    constraint's name and the error to raise when the statement breaks it.
    """

    ctes: str
    args: Sequence[Any]
    wrote: str
    returning: str
    conflicts: Mapping[str, Callable[[], Exception]] = field(default_factory=dict)


#: A unit of work's connection: an ORM session, or a raw one on the fast path.
DB = TypeVar("DB", AsyncSession, RawTransaction)


@dataclass(frozen=True, slots=True)
class _Batch:
    events: Sequence[Event]
    cause: Envelope | None


class UnitOfWork(Generic[DB]):
    """One use case's transaction: ``db`` for the stores' queries, ``emit`` for its events."""

    def __init__(self, db: DB, outbox: Outbox | None) -> None:
        #: The transaction's connection, for the stores.
        self.db: DB = db
        self._outbox = outbox
        self._batches: list[_Batch] = []
        self._after_commit: list[Callable[[], None]] = []
        self._fused = False
        self._marked = False  # the Idempotency-Key's mark is written (once is enough)

    def emit(self, *events: Event, cause: Envelope | None = None) -> None:
        """Events to publish if the work commits (outbox rows, in the same commit), in the
        order emitted. One call's events share a correlation id: the first one's id, or
        ``cause``'s, the consumed event that caused them (its id is their causation id)."""
        if events:
            if self._outbox is None:
                raise RuntimeError("this service has no outbox: its units of work emit nothing")
            self._batches.append(_Batch(events, cause))

    async def flush(self) -> list[uuid.UUID]:
        """Write the events emitted so far now (less to write later, under locks taken
        meanwhile); their ids."""
        ids: list[uuid.UUID] = []
        batches, self._batches = self._batches, []
        for batch in batches:
            assert self._outbox is not None  # emit takes no events without one
            ids += await self._outbox.add(self.db, batch.events, **_caused_by(batch.cause))
        if ids and not self._marked:
            # A retried command must not run again once this work commits (its answer may
            # be lost with a killed process): its Idempotency-Key says so, in the same commit.
            self._marked = True
            await idempotency.mark_committed(self.db)
        return ids

    async def retract(self, event_ids: Sequence[uuid.UUID]) -> None:
        """Take back events this work flushed (they are not published)."""
        if not event_ids or self._outbox is None:
            return
        # Unpublished rows: found through the relay's partial index.
        query = (
            f"DELETE FROM {self._outbox.table_name}"
            " WHERE published_at IS NULL AND event_id = ANY($1::uuid[])"
        )
        if isinstance(self.db, RawTransaction):
            await self.db.execute(query, list(event_ids))
        else:
            query = query.replace("$1::uuid[]", "CAST(:ids AS uuid[])")
            await self.db.execute(text(query), {"ids": list(event_ids)})

    async def commit(self, write: Fused) -> asyncpg.Record | None:
        """Write ``write`` with the emitted events, the Idempotency-Key mark and the audit row
        in one statement (the fast path's units of work only); its ``returning`` row, or None
        when the command wrote nothing (then neither was anything else).

        Raises ``audit.AuditUnavailableError`` when the audit row could not be written
        (nothing was), and ``write.conflicts``' errors.
        """
        if not isinstance(self.db, RawTransaction) or self._fused:
            raise RuntimeError("a fused write needs a fast unit of work, and only one")
        self._fused = True
        batches, self._batches = self._batches, []
        args = list(write.args)
        guard = f"EXISTS (SELECT FROM {write.wrote})"
        inserts = []
        for batch in batches:
            assert self._outbox is not None  # emit takes no events without one
            rows = self._outbox.rows(batch.events, **_caused_by(batch.cause))
            inserts.append(self._outbox.insert_sql(len(args) + 1, where=guard))
            args += rows.params
        mark = None if self._marked else idempotency.committed_mark(len(args) + 1)
        if mark:
            args.append(mark[1])
        audit_row = audit.row_in_statement(len(args) + 1)
        if audit_row:
            args += audit_row[1]
        query = _fused_sql(
            write.ctes,
            write.returning,
            guard,
            tuple(inserts),
            mark[0] if mark else None,
            audit_row[0] if audit_row else None,
        )
        try:
            found = await self.db.fetchrow(query, *args)
        except asyncpg.UniqueViolationError as error:
            conflict = write.conflicts.get(error.constraint_name or "")
            if conflict is None:
                raise
            raise conflict() from None
        except asyncpg.PostgresError as error:
            if audit_row and audit.AuditUnavailableError.caused(error):
                raise audit.AuditUnavailableError from None  # nothing was written
            raise
        if found is not None:
            self._marked = self._marked or mark is not None
            if batches:
                self.db.wrote_outbox = True  # the relay is woken after the commit
            if audit_row:
                self._after_commit.append(audit_row[2])
        return found

    async def _finish(self) -> None:
        """Before the commit: the events not written yet."""
        await self.flush()

    def _committed(self) -> None:
        for callback in self._after_commit:
            callback()  # the audit row committed: the response waits for no other


@functools.cache
def _fused_sql(
    ctes: str,
    returning: str,
    guard: str,
    inserts: tuple[str, ...],
    mark: str | None,
    audit_row: str | None,
) -> str:
    parts = [ctes]
    parts += [f"sent{n} AS ({insert})" for n, insert in enumerate(inserts)]
    if mark:
        parts.append(f"marked AS ({mark} AND {guard})")
    if audit_row:
        parts.append(f"audited AS ({audit_row} WHERE {guard})")
    return f"WITH {', '.join(parts)} {returning}"


def _caused_by(cause: Envelope | None) -> dict[str, Any]:
    """Outbox arguments tying new events to the consumed event that caused them."""
    if cause is None:
        return {}
    return {"correlation_id": cause.correlationid, "causation_id": cause.id}


class UnitsOfWork:
    """Opens a service's units of work (its sessions, raw connections and outbox; a service
    that publishes nothing has no outbox, and its units of work emit nothing)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Outbox | None,
        commands: CommandPool | None = None,
    ) -> None:
        self._sessions = sessions
        self._outbox = outbox
        self._commands = commands

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[UnitOfWork[AsyncSession]]:
        """A unit of work on an ORM session: committed when the block ends, rolled back if it
        raises."""
        async with self._sessions() as db, db.begin():
            uow = UnitOfWork(db, self._outbox)
            yield uow
            await uow._finish()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for a use case that only reads, for the stores' queries.

        No transaction: each statement sees the data as it is when it starts, as it would in
        a READ COMMITTED transaction, without that transaction's BEGIN and ROLLBACK round
        trips. Nothing is written and nothing is emitted.
        """
        async with self._sessions() as db:
            await db.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            yield db

    @contextlib.asynccontextmanager
    async def fast(self, *, transaction: bool = False) -> AsyncIterator[UnitOfWork[RawTransaction]]:
        """A unit of work on a raw connection, for a command that ends in one ``Fused``
        write (``commit``). Without ``transaction``, each statement commits on its own
        (optimistic: read, decide, then write only if what was read did not move); with it,
        the block is one transaction (for row locks taken before the write)."""
        if self._commands is None:
            raise RuntimeError("no command pool: no fast units of work")
        connection = self._commands.transaction if transaction else self._commands.statements
        async with connection() as tx:
            uow = UnitOfWork(tx, self._outbox)
            yield uow
            await uow._finish()
        uow._committed()

    @contextlib.asynccontextmanager
    async def joining(self, db: AsyncSession) -> AsyncIterator[UnitOfWork[AsyncSession]]:
        """A unit of work inside a transaction someone else commits (a consumer's, with its
        inbox claim): its events are written when the block ends."""
        uow = UnitOfWork(db, self._outbox)
        yield uow
        await uow._finish()
