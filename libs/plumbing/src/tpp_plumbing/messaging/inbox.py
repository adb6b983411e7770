"""Inbox: the ids of applied events, recorded in the transaction that applies them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, Table, Text, func
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession

TABLE_NAME = "inbox_message"


def inbox_table(metadata: MetaData) -> Table:
    """The inbox table, in a service's own metadata (its migrations create it)."""
    return Table(
        TABLE_NAME,
        metadata,
        Column("event_id", UUID(as_uuid=True), primary_key=True),
        Column("event_type", Text, nullable=False),
        Column("topic", Text, nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


class Inbox:
    """Claims event ids: an event is applied only by the transaction that first claims it."""

    def __init__(self, table: Table) -> None:
        self._table = table

    async def claim(
        self,
        session: AsyncSession,
        rows: Sequence[tuple[uuid.UUID, str, str, int, int]],
    ) -> set[uuid.UUID]:
        """Record (event id, type, topic, partition, offset) rows; return the ids new here.

        A concurrent transaction claiming the same id waits on the unique index and then
        finds it taken, so two consumers never both apply one event.
        """
        if not rows:
            return set()
        statement = (
            insert(self._table)
            .values(
                [
                    {
                        "event_id": event_id,
                        "event_type": event_type,
                        "topic": topic,
                        "partition": partition,
                        "offset": offset,
                    }
                    for event_id, event_type, topic, partition, offset in rows
                ]
            )
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(self._table.c.event_id)
        )
        result = await session.execute(statement)
        return set(result.scalars())
