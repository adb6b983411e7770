"""Idempotent consumers: decode, dedupe through the inbox, apply, in one traced transaction.

``EventConsumer.apply`` takes records (in order), applies the events it has handlers for in
one transaction together with their inbox rows, and reports what it could not apply:
poison messages (not JSON, not an envelope, schema-invalid, oversized) come back to the
caller (``tpp_plumbing.messaging.apply``), which parks them on the dead-letter topic. Unknown
event types are ignored. A handler's exception rolls the transaction back and propagates: the
caller retries with backoff.

Tracing happens around ``apply`` in the caller (``tpp_plumbing.messaging.tracing``), so that
consumers which override ``apply`` (set-based batches) are traced the same way.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tpp_contracts.envelope import Envelope, Event, PoisonMessageError, decode

from tpp_plumbing.messaging.inbox import Inbox
from tpp_plumbing.observability.metrics import Metrics

log = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, Any, Envelope], Awaitable[None]]
Record: TypeAlias = "ConsumerRecord[Any, Any]"


@dataclass(frozen=True, slots=True)
class Poison:
    """A record that can never be applied, and why (field names and error kinds only)."""

    record: Record
    reason: str


@dataclass(frozen=True, slots=True)
class Applied:
    """What one call did: events applied, duplicates skipped, ignored and poison messages."""

    applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    poison: int = 0
    poisoned: tuple[Poison, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class _Item:
    record: Record
    envelope: Envelope
    event: Event


class EventConsumer:
    """Applies the events a service projects, each exactly once.

    ``handlers`` maps event models to ``handler(session, event, envelope)``; other types
    are ignored. Records are applied in one transaction together with their inbox rows; the
    runner commits offsets only after that transaction commits.
    """

    def __init__(
        self,
        *,
        name: str,
        sessions: async_sessionmaker[AsyncSession],
        inbox: Inbox,
        handlers: Mapping[type[Event], Handler],
        max_message_bytes: int = 1_048_576,
    ) -> None:
        self.name = name
        self._sessions = sessions
        self._inbox = inbox
        self._handlers = dict(handlers)
        self.max_message_bytes = max_message_bytes
        self.group = name
        self.service = name
        self._metrics: Metrics | None = None
        self.applied = 0
        self.duplicates = 0

    def bind(
        self,
        *,
        group: str,
        service: str,
        metrics: Metrics | None = None,
        max_message_bytes: int | None = None,
    ) -> None:
        """Name the group and service this consumer runs in (for traces, metrics and logs)."""
        self.group = group
        self.service = service
        self._metrics = metrics
        if max_message_bytes is not None:
            self.max_message_bytes = max_message_bytes

    @property
    def handles(self) -> set[str]:
        """The event types this consumer applies."""
        return {model.type for model in self._handlers}

    def _decode(self, record: Record) -> _Item | Poison | None:
        size = len(record.value) if record.value is not None else 0
        if size > self.max_message_bytes:
            return Poison(record, f"oversized: {size} bytes > {self.max_message_bytes}")
        try:
            message = decode(record.value)
        except PoisonMessageError as error:
            return Poison(record, error.reason)
        if message.event is None or type(message.event) not in self._handlers:
            return None
        return _Item(record, message.envelope, message.event)

    def find_poison(self, records: Sequence[Record]) -> list[Poison]:
        """The records that can never be applied, and why (no I/O)."""
        return [d for d in map(self._decode, records) if isinstance(d, Poison)]

    async def apply(self, records: Sequence[Record]) -> Applied:
        """Apply records (in order) in one transaction; a redelivered event changes nothing."""
        items: list[_Item] = []
        poisoned: list[Poison] = []
        ignored = 0
        for record in records:
            decoded = self._decode(record)
            if decoded is None:
                ignored += 1
            elif isinstance(decoded, Poison):
                poisoned.append(decoded)
                log.warning(
                    "poison message",
                    extra={
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "group": self.group,
                        "reason": decoded.reason,
                    },
                )
            else:
                items.append(decoded)
        if not items:
            return Applied(ignored=ignored, poison=len(poisoned), poisoned=tuple(poisoned))
        seen: set[uuid.UUID] = set()
        unique = []
        for item in items:
            if item.envelope.id not in seen:
                seen.add(item.envelope.id)
                unique.append(item)
        async with self._sessions() as session, session.begin():
            new = await self._inbox.claim(
                session,
                [
                    (
                        i.envelope.id,
                        i.envelope.type,
                        i.record.topic,
                        i.record.partition,
                        i.record.offset,
                    )
                    for i in unique
                ],
            )
            for item in unique:
                if item.envelope.id in new:
                    await self._handle(session, item)
        duplicates = len(items) - len(new)
        self.applied += len(new)
        self.duplicates += duplicates
        return Applied(
            applied=len(new),
            duplicates=duplicates,
            ignored=ignored,
            poison=len(poisoned),
            poisoned=tuple(poisoned),
        )

    async def _handle(self, session: AsyncSession, item: _Item) -> None:
        started = time.perf_counter()
        await self._handlers[type(item.event)](session, item.event, item.envelope)
        if self._metrics is not None:
            self._metrics.handler_duration.labels(self.group, item.envelope.type).observe(
                time.perf_counter() - started
            )
