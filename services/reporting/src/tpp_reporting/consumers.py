"""Reporting consumers: every registry and enrollment topic, applied in batches.

One batch of records is one transaction: the inbox claims the new event ids, the batch's
net effect is written with one statement per table, and the next offsets are recorded; the
framework commits the Kafka offsets only after that transaction commits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tpp_contracts.topics import ALL as ALL_TOPICS
from tpp_plumbing.db.writes import CommandPool
from tpp_plumbing.messaging.consumer import Applied, EventConsumer, Poison
from tpp_plumbing.messaging.inbox import Inbox
from tpp_plumbing.runtime import Subscription

from tpp_reporting import readers
from tpp_reporting.store import tables
from tpp_reporting.store.projection import Connection, Item, project_live

log = logging.getLogger(__name__)

#: Held shared by every live batch, exclusively by a rebuild while it swaps tables in.
SWAP_LOCK = 7_470_705_172


def decode_records(
    records: Sequence[ConsumerRecord[Any, Any]], *, max_message_bytes: int
) -> tuple[list[Item], int, list[Poison]]:
    """Decode records: (projected items, ignored count, poison records with reasons).

    The rebuild decodes with the same size limit as the live consumer, so that both skip the
    same records.
    """
    items: list[Item] = []
    ignored = 0
    poison: list[Poison] = []
    for record in records:
        size = len(record.value) if record.value is not None else 0
        try:
            if size > max_message_bytes:
                raise readers.PoisonError(f"oversized: {size} bytes > {max_message_bytes}")
            event = readers.decode(record.value)
        except readers.PoisonError as error:
            poison.append(Poison(record, str(error)))
            log.warning(
                "poison message",
                extra={
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "reason": str(error),
                },
            )
            continue
        if event is None:
            ignored += 1
            continue
        items.append(Item(record.topic, record.partition, record.offset, event))
    return items, ignored, poison


class ProjectionConsumer(EventConsumer):
    """Applies batches set-based (see ``projection``) instead of one handler per event."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        commands: CommandPool,
        max_message_bytes: int,
        name: str = "projections",
    ) -> None:
        self._commands = commands
        super().__init__(
            name=name,
            sessions=sessions,
            inbox=Inbox(tables.inbox),
            handlers={},
            max_message_bytes=max_message_bytes,
        )

    async def apply(self, records: Sequence[ConsumerRecord[Any, Any]]) -> Applied:
        """Apply records (in order) in one transaction; a redelivered event changes nothing."""
        if not records:
            return Applied()
        items, ignored, poison = decode_records(records, max_message_bytes=self.max_message_bytes)
        positions = {(r.topic, r.partition): r.offset + 1 for r in records}
        # The inbox claim, the projections and the positions commit together or not at all:
        # three round trips (BEGIN with the lock, one statement, COMMIT). The lock waits
        # while a rebuild swaps the tables in, so this batch lands in the new ones (held to
        # the end of the transaction).
        async with self._commands.transaction(
            first=f"SELECT pg_advisory_xact_lock_shared({int(SWAP_LOCK)})"
        ) as tx:
            applied = await project_live(cast(Connection, tx.conn), items, positions)
        duplicates = len(items) - applied
        self.applied += applied
        self.duplicates += duplicates
        return Applied(
            applied=applied,
            duplicates=duplicates,
            ignored=ignored,
            poison=len(poison),
            poisoned=tuple(poison),
        )


def topics() -> list[str]:
    """Every registry and enrollment topic (unprefixed)."""
    return [topic.name for topic in ALL_TOPICS]


def subscriptions(
    sessions: async_sessionmaker[AsyncSession],
    commands: CommandPool,
    *,
    batch_size: int,
    max_message_bytes: int,
) -> list[Subscription]:
    """What reporting consumes: every topic, each with its own batched consumer.

    One consumer per topic, all in the service's group: a consumer whose partitions all
    have events to catch up on fetches again as soon as its batch is applied, instead of
    waiting behind a long poll on the quiet topics (organizers, plans) that shares its fetch
    requests. The projections do not depend on the order between topics, and every batch
    takes the same swap lock, so nothing else changes.
    """
    return [
        Subscription(
            ProjectionConsumer(
                sessions=sessions,
                commands=commands,
                max_message_bytes=max_message_bytes,
                name=f"projections-{topic.split('.')[1]}",  # e.g. projections-sessions
            ),
            [topic],
            batch=True,
            max_records=batch_size,
        )
        for topic in topics()
    ]
