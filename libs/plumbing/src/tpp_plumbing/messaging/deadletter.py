"""Dead letters: messages a consumer parked on ``<topic>.dlq``, and how to read and redrive them.

A dead letter is the original record (key, value, headers) plus headers saying where it came
from and why it was parked: ``dlq-original-topic``, ``dlq-original-partition``,
``dlq-original-offset``, ``dlq-kind`` (``poison``: can never be applied; ``failed``: the
handler kept failing), ``dlq-error`` (field names and error kinds, or an exception type:
never values), ``dlq-attempts``, ``dlq-group`` and ``dlq-parked-at``. Redriving sends the
original record back to its topic; every consumer's inbox still deduplicates it.

Every consumer may write the dead-letter twins of what it consumes, so a dead letter proves
nothing by itself: redrive reads the original record at the partition and offset the letter
names, in the dead-letter topic's own origin topic (never the one a header claims), and sends
that original only when the letter's key and value are the same bytes. Anything else is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tpp_plumbing.settings import KafkaSettings

SUFFIX = ".dlq"
PREFIX = "dlq-"
ORIGINAL_TOPIC = "dlq-original-topic"
ORIGINAL_PARTITION = "dlq-original-partition"
ORIGINAL_OFFSET = "dlq-original-offset"
KIND = "dlq-kind"
ERROR = "dlq-error"
ATTEMPTS = "dlq-attempts"
GROUP = "dlq-group"
PARKED_AT = "dlq-parked-at"
#: The headers a dead letter carries beside the original record's own.
DEAD_LETTER_HEADERS = (
    ORIGINAL_TOPIC,
    ORIGINAL_PARTITION,
    ORIGINAL_OFFSET,
    KIND,
    ERROR,
    ATTEMPTS,
    GROUP,
    PARKED_AT,
)
REDRIVEN_FROM = "redriven-from"
#: Longest error text kept in a header.
MAX_ERROR = 500


def dead_letter_topic(topic: str) -> str:
    """The dead-letter twin of a (full, prefixed) topic name."""
    return topic + SUFFIX


def dead_letter_headers(
    record: ConsumerRecord[Any, Any], *, group: str, kind: str, error: str, attempts: int
) -> list[tuple[str, bytes]]:
    """The original record's headers (trace context included) plus where and why it failed."""
    kept = [(k, v) for k, v in record.headers or () if not k.startswith(PREFIX)]
    return [
        *kept,
        (ORIGINAL_TOPIC, record.topic.encode()),
        (ORIGINAL_PARTITION, str(record.partition).encode()),
        (ORIGINAL_OFFSET, str(record.offset).encode()),
        (KIND, kind.encode()),
        (ERROR, error[:MAX_ERROR].encode()),
        (ATTEMPTS, str(attempts).encode()),
        (GROUP, group.encode()),
        (PARKED_AT, datetime.now(UTC).isoformat().encode()),
    ]


class DeadLetterSink:
    """Parks records on their ``.dlq`` topics (idempotent producer, acks=all)."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._kafka = kafka
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    **self._kafka.client_options(), acks="all", enable_idempotence=True
                )
                await producer.start()
                self._producer = producer
            return self._producer

    async def park(
        self,
        record: ConsumerRecord[Any, Any],
        *,
        group: str,
        kind: str,
        error: str,
        attempts: int,
    ) -> None:
        """Send ``record`` to its dead-letter topic and wait for the broker's ack."""
        producer = await self._started()
        await producer.send_and_wait(
            dead_letter_topic(record.topic),
            value=record.value,
            key=record.key,
            headers=dead_letter_headers(
                record, group=group, kind=kind, error=error, attempts=attempts
            ),
        )

    async def close(self) -> None:
        """Flush and close the producer."""
        async with self._lock:
            if self._producer is not None:
                with contextlib.suppress(Exception):
                    await self._producer.stop()
                self._producer = None


@dataclass(frozen=True)
class DeadLetter:
    """One parked message, as read back from a dead-letter topic."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str] = field(default_factory=dict)
    raw_headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def from_record(cls, record: ConsumerRecord[Any, Any]) -> DeadLetter:
        """Parse a record of a dead-letter topic."""
        raw = tuple((k, v or b"") for k, v in record.headers or ())
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp,
            key=record.key,
            value=record.value,
            headers={k: v.decode("utf-8", "replace") for k, v in raw},
            raw_headers=raw,
        )

    @property
    def ref(self) -> str:
        """``partition:offset`` within the dead-letter topic."""
        return f"{self.partition}:{self.offset}"

    @property
    def original_topic(self) -> str:
        """The topic whose dead-letter twin holds this letter: the only one it may go back to."""
        return self.topic.removesuffix(SUFFIX)

    @property
    def original_ref(self) -> tuple[int, int] | None:
        """(partition, offset) of the original record, as the letter's headers name it."""
        partition = self.headers.get(ORIGINAL_PARTITION, "")
        offset = self.headers.get(ORIGINAL_OFFSET, "")
        if not (partition.isdigit() and offset.isdigit()):
            return None
        return int(partition), int(offset)

    @property
    def parked_at(self) -> datetime:
        """When it was parked."""
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    def envelope(self) -> dict[str, Any] | None:
        """The message value as JSON, when it is JSON."""
        if self.value is None:
            return None
        try:
            parsed = json.loads(self.value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None

    def redrive_headers(
        self, original: Sequence[tuple[str, bytes]] | None = None
    ) -> list[tuple[str, bytes]]:
        """The original record's headers (default: those the letter carries), plus where the
        copy comes from."""
        source = self.raw_headers if original is None else original
        kept = [(k, v) for k, v in source if not k.startswith(PREFIX) and k != REDRIVEN_FROM]
        return [*kept, (REDRIVEN_FROM, f"{self.topic}/{self.ref}".encode())]

    def mismatch(self, original: ConsumerRecord[Any, Any] | None) -> str | None:
        """Why this letter is not a copy of ``original`` (the record at the partition and
        offset it names, None when there is none), or None when it is."""
        where = self.original_ref
        if not self.topic.endswith(SUFFIX):
            return f"{self.topic} is not a dead-letter topic"
        claimed = self.headers.get(ORIGINAL_TOPIC)
        if claimed != self.original_topic:
            return (
                f"it claims to come from {claimed or 'nowhere'}, but was parked on the"
                f" dead-letter topic of {self.original_topic}"
            )
        if where is None:
            return "it names no original partition and offset"
        partition, offset = where
        if original is None:
            return f"{self.original_topic} has no record at {partition}:{offset}"
        if self.key != original.key:
            return f"its key differs from the original's at {partition}:{offset}"
        if self.value != original.value:
            ids = _event_id(self.value), _event_id(original.value)
            detail = f" (event {ids[0]}, the original is {ids[1]})" if ids[0] != ids[1] else ""
            return f"its value differs from the original's at {partition}:{offset}{detail}"
        return None


def _event_id(value: bytes | None) -> str:
    try:
        parsed = json.loads(value or b"")
    except ValueError:
        return "-"
    return str(parsed.get("id", "-")) if isinstance(parsed, dict) else "-"


@dataclass(frozen=True)
class Refusal:
    """A dead letter redrive would not send, and why."""

    letter: DeadLetter
    reason: str


@dataclass(frozen=True)
class Redriven:
    """What a redrive sent back and what it refused."""

    sent: list[DeadLetter] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


async def partitions_of(kafka: KafkaSettings, topic: str) -> list[TopicPartition]:
    """The partitions of a topic (empty when it does not exist)."""
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"]:
        return []
    return sorted(TopicPartition(topic, p["partition"]) for p in described["partitions"])


async def read_dead_letters(
    kafka: KafkaSettings,
    topic: str,
    *,
    after: dict[int, int] | None = None,
    limit: int | None = None,
    timeout_s: float = 30.0,
) -> list[DeadLetter]:
    """Every dead letter of ``topic`` (a ``.dlq`` topic) up to its current end.

    ``after`` maps partitions to the first offset to read (default: the beginning);
    reading gives up after ``timeout_s`` seconds with what it has.
    """
    tps = await partitions_of(kafka, topic)
    if not tps:
        return []
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None, enable_auto_commit=False)
    await consumer.start()
    letters: list[DeadLetter] = []
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(starts[tp], (after or {}).get(tp.partition, 0)))
        remaining = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while remaining and loop.time() < deadline:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < ends[tp]:
                        letters.append(DeadLetter.from_record(record))
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            if limit is not None and len(letters) >= limit:
                break
    finally:
        await consumer.stop()
    letters.sort(key=lambda d: (d.timestamp_ms, d.partition, d.offset))
    return letters[:limit] if limit is not None else letters


async def originals(
    kafka: KafkaSettings, letters: Sequence[DeadLetter], *, timeout_s: float = 10.0
) -> dict[tuple[str, int, int], ConsumerRecord[Any, Any]]:
    """The records the letters name, read from their dead-letter topics' origin topics (a
    record no longer in the log, or never there, is absent)."""
    wanted = {
        (letter.original_topic, *ref)
        for letter in letters
        if (ref := letter.original_ref) is not None
    }
    if not wanted:
        return {}
    found: dict[tuple[str, int, int], ConsumerRecord[Any, Any]] = {}
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        existing = {
            tp for topic in {t for t, _, _ in wanted} for tp in await partitions_of(kafka, topic)
        }
        tps = sorted({TopicPartition(t, p) for t, p, _ in wanted} & existing)
        if not tps:
            return {}
        consumer.assign(tps)
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        loop = asyncio.get_running_loop()
        for topic, partition, offset in sorted(wanted):
            tp = TopicPartition(topic, partition)
            if tp not in starts or not starts[tp] <= offset < ends[tp]:
                continue
            consumer.seek(tp, offset)
            deadline = loop.time() + timeout_s
            while loop.time() < deadline:
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=1)
                records = batch.get(tp, [])
                if records:
                    # A record at the offset itself, or nothing there (a gap, e.g. compaction).
                    if records[0].offset == offset:
                        found[(topic, partition, offset)] = records[0]
                    break
            else:
                raise TimeoutError(f"could not read {topic} {partition}:{offset}")
    finally:
        await consumer.stop()
    return found


async def redrive(kafka: KafkaSettings, letters: Sequence[DeadLetter]) -> Redriven:
    """Send each dead letter that is a true copy of its original back to the origin topic of
    its dead-letter topic (in order), as the original record; refuse the others with why."""
    result = Redriven()
    if not letters:
        return result
    records = await originals(kafka, letters)
    checked: list[tuple[DeadLetter, ConsumerRecord[Any, Any]]] = []
    for letter in letters:
        ref = letter.original_ref
        original = records.get((letter.original_topic, *ref)) if ref is not None else None
        reason = letter.mismatch(original)
        if reason is not None or original is None:
            result.refused.append(Refusal(letter, reason or "no original"))
        else:
            checked.append((letter, original))
    if not checked:
        return result
    producer = AIOKafkaProducer(**kafka.client_options(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for letter, original in checked:
            await producer.send_and_wait(
                letter.original_topic,
                value=original.value,
                key=original.key,
                headers=letter.redrive_headers([(k, v or b"") for k, v in original.headers or ()]),
            )
            result.sent.append(letter)
    finally:
        await producer.stop()
    return result
