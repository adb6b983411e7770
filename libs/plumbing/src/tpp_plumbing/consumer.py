"""Idempotent consumers: decode, dedupe through the inbox, apply, then commit the offset."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tpp_contracts.envelope import Envelope, Event, PoisonMessageError, decode

from tpp_plumbing.inbox import Inbox

log = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, Any, Envelope], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Applied:
    """What one call did: events applied, duplicates skipped, ignored and poison messages."""

    applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    poison: int = 0


async def _raw_body(message: StreamMessage[Any]) -> Any:
    # Decoding is ours (poison messages must not fail inside the framework).
    return message.body


class EventConsumer:
    """Applies the events a service projects, each exactly once.

    ``handlers`` maps event models to ``handler(session, event, envelope)``; other types
    are ignored. A batch of records is applied in one transaction together with its inbox
    rows; the framework commits offsets only after that transaction commits.
    """

    def __init__(
        self,
        *,
        name: str,
        sessions: async_sessionmaker[AsyncSession],
        inbox: Inbox,
        handlers: Mapping[type[Event], Handler],
    ) -> None:
        self.name = name
        self._sessions = sessions
        self._inbox = inbox
        self._handlers = dict(handlers)
        self.applied = 0
        self.duplicates = 0

    async def apply(self, records: Sequence[ConsumerRecord[Any, Any]]) -> Applied:
        """Apply records (in order) in one transaction; a redelivered event changes nothing."""
        decoded: list[tuple[ConsumerRecord[Any, Any], Envelope, Event]] = []
        ignored = poison = 0
        for record in records:
            try:
                message = decode(record.value)
            except PoisonMessageError as error:
                poison += 1
                log.warning(
                    "skipping poison message",
                    extra={
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "reason": error.reason,
                    },
                )
                continue
            if message.event is None or type(message.event) not in self._handlers:
                ignored += 1
                continue
            decoded.append((record, message.envelope, message.event))
        if not decoded:
            return Applied(ignored=ignored, poison=poison)
        seen: set[uuid.UUID] = set()
        unique = []
        for item in decoded:
            if item[1].id not in seen:
                seen.add(item[1].id)
                unique.append(item)
        async with self._sessions() as session, session.begin():
            new = await self._inbox.claim(
                session,
                [
                    (env.id, env.type, rec.topic, rec.partition, rec.offset)
                    for rec, env, _ in unique
                ],
            )
            for _, envelope, event in unique:
                if envelope.id in new:
                    await self._handlers[type(event)](session, event, envelope)
        duplicates = len(decoded) - len(new)
        self.applied += len(new)
        self.duplicates += duplicates
        return Applied(applied=len(new), duplicates=duplicates, ignored=ignored, poison=poison)

    def subscribe(
        self,
        broker: KafkaBroker,
        topics: Iterable[str],
        *,
        group_id: str,
        batch: bool = False,
        max_records: int = 500,
    ) -> None:
        """Register this consumer on the broker (offsets committed after each apply)."""
        names = list(topics)
        if batch:
            batch_subscriber = broker.subscriber(
                *names,
                group_id=group_id,
                auto_offset_reset="earliest",
                ack_policy=AckPolicy.NACK_ON_ERROR,
                batch=True,
                max_records=max_records,
                decoder=_raw_body,
            )

            @batch_subscriber
            async def on_batch(message: KafkaMessage) -> None:
                await self.apply(_records(message.raw_message))

            return
        subscriber = broker.subscriber(
            *names,
            group_id=group_id,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=_raw_body,
        )

        @subscriber
        async def on_event(message: KafkaMessage) -> None:
            await self.apply(_records(message.raw_message))


def _records(raw: Any) -> Sequence[ConsumerRecord[Any, Any]]:
    return raw if isinstance(raw, tuple | list) else (raw,)
