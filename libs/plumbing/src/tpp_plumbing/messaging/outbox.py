"""Transactional outbox, the writer's side: events written with the state change.

Writers add outbox rows in the transaction that changes their state. They do not NOTIFY
inside it: PostgreSQL holds one global lock from a notifying transaction's pre-commit to its
end (across the WAL flush), which serializes every writer. Instead, a commit that wrote
outbox rows calls its session factory's ``after_outbox_commit`` (``tpp_plumbing.db.engine``),
which wakes the service's relay (``tpp_plumbing.messaging.relay``), outside any writer's
transaction.

Per-key order: writers of events with the same key serialize on that aggregate's row lock
before adding outbox rows, so for any one key the id order is the commit order.

Tracing: a row's ``headers`` keep the W3C trace context of the transaction that wrote it;
the relay links its publish span to it.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    MetaData,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy import event as sa_event
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from tpp_contracts.envelope import Event, EventEncoder, new_event_id

from tpp_plumbing.db.engine import AFTER_OUTBOX_COMMIT
from tpp_plumbing.db.writes import RawTransaction
from tpp_plumbing.observability import telemetry

log = logging.getLogger(__name__)

_INSERT_PARAMS = ("event_id", "event_type", "topic", "key", "payload", "headers")
TABLE_NAME = "outbox_message"
# session.info flag: this session's open transaction wrote outbox rows.
_WROTE = "tpp_outbox_wrote"


@sa_event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_WROTE, False):
        callback = session.info.get(AFTER_OUTBOX_COMMIT)
        if callback is not None:
            try:
                callback()
            except Exception:  # the commit stands; the relay's polling publishes the rows
                log.exception("outbox wake-up failed")


@sa_event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_WROTE, None)


def outbox_table(metadata: MetaData) -> Table:
    """The outbox table, in a service's own metadata (its migrations create it)."""
    return Table(
        TABLE_NAME,
        metadata,
        Column("id", BigInteger, Identity(always=True), primary_key=True),
        # Not indexed: the outbox makes each id itself (``new_event_id``), and no query looks
        # a row up by it (``tpp_plumbing.db.shared_migrations.outbox_table_v2``).
        Column("event_id", UUID(as_uuid=True), nullable=False),
        Column("event_type", Text, nullable=False),
        Column("topic", Text, nullable=False),
        Column("key", Text, nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Index(
            "ix_outbox_message_unpublished",
            "id",
            postgresql_where=text("published_at IS NULL"),
        ),
    )


@dataclass(frozen=True, slots=True)
class OutboxRows:
    """A command's events ready to insert: their ids and the insert's six parameters."""

    ids: list[uuid.UUID]
    params: tuple[Any, ...]


class Outbox:
    """Adds a service's outgoing events to its outbox, inside the caller's transaction."""

    def __init__(self, table: Table, *, source: str) -> None:
        self._source = source
        self.table_name = table.name
        self._into = f"INSERT INTO {table.name} ({', '.join(_INSERT_PARAMS)})"
        # The same statement for a raw transaction ($n parameters) and for a session.
        self._raw_insert = self.insert_sql(1)
        self._insert = text(
            f"{self._into} SELECT e, t, tp, k, p, CAST(:headers AS jsonb)"
            " FROM unnest(CAST(:event_id AS uuid[]), CAST(:event_type AS text[]),"
            " CAST(:topic AS text[]), CAST(:key AS text[]), CAST(:payload AS bytea[]))"
            " WITH ORDINALITY AS r(e, t, tp, k, p, n) ORDER BY n"
        )

    def insert_sql(self, first: int, *, where: str = "") -> str:
        """The insert of ``rows``' parameters as ``$first`` to ``$first+5``, for a statement
        that writes a command's state and its events at once (``where``: only if it did)."""
        p = [f"${n}" for n in range(first, first + 6)]
        condition = f" WHERE {where}" if where else ""
        # One statement whatever the number of events, its columns as arrays: a fraction of
        # SQLAlchemy's executemany per row (docs/decisions/0003); ORDINALITY keeps the ids in the
        # events' order.
        return (
            f"{self._into} SELECT e, t, tp, k, p, {p[5]}::jsonb"
            f" FROM unnest({p[0]}::uuid[], {p[1]}::text[], {p[2]}::text[], {p[3]}::text[],"
            f" {p[4]}::bytea[]) WITH ORDINALITY AS r(e, t, tp, k, p, n){condition} ORDER BY n"
        )

    def rows(
        self,
        events: Sequence[Event],
        *,
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
        headers: dict[str, str] | None = None,
    ) -> OutboxRows:
        """Events in their envelopes, as the outbox insert's parameters.

        The current trace context (W3C ``traceparent``) is stored with each row.
        """
        stored = telemetry.inject(headers)
        now = datetime.now().astimezone()
        ids = [new_event_id() for _ in events]
        if not ids:
            return OutboxRows([], ([], [], [], [], [], json.dumps(stored)))
        # Events of one command share a correlation id: the first event's own id.
        encode = EventEncoder(
            source=self._source,
            time=now,
            correlation_id=correlation_id or ids[0],
            causation_id=causation_id,
        )
        params = (
            ids,
            [event.type for event in events],
            [event.topic.name for event in events],
            [event.key() for event in events],
            [encode(event, event_id) for event, event_id in zip(events, ids, strict=True)],
            json.dumps(stored),
        )
        return OutboxRows(ids, params)

    async def add(
        self,
        session: AsyncSession | RawTransaction,
        events: Sequence[Event],
        *,
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
        headers: dict[str, str] | None = None,
    ) -> list[uuid.UUID]:
        """Write events as outbox rows; they are published after the transaction commits.
        Returns the events' ids.

        ``session`` is an ORM session or a raw transaction (``tpp_plumbing.db.writes``). The
        current trace context (W3C ``traceparent``) is stored with each row.
        """
        if not events:
            return []
        rows = self.rows(
            events, correlation_id=correlation_id, causation_id=causation_id, headers=headers
        )
        if isinstance(session, RawTransaction):
            await session.execute(self._raw_insert, *rows.params)
            session.wrote_outbox = True  # the relay is woken after the commit
        else:
            params = dict(zip(_INSERT_PARAMS, rows.params, strict=True))
            await session.execute(self._insert, params)
            session.info[_WROTE] = True  # the relay is woken after the commit (docstring)
        return rows.ids
