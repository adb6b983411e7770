"""Reading the chaos stack's Kafka: every record of a topic, and a consumer group's lag."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from tpp_ops.offsets import committed_offsets
from tpp_plumbing.settings import KafkaSettings

from tests.chaos.stack import log


@dataclass
class TopicRecord:
    topic: str
    partition: int
    offset: int
    value: bytes | None


#: Seconds without a record after which a topic is taken as read (see ``read_topic``).
IDLE_S = 15.0


async def read_topic(kafka: KafkaSettings, topic: str) -> list[TopicRecord]:
    """Every record of a topic, from its first offset to its current end.

    A read that returns fewer records than the offsets say the topic holds (a long run once
    got no partition metadata for a topic after the broker's restart, and so read nothing)
    is done again with a new consumer, up to three times; then the checks fail on it.
    """
    records: list[TopicRecord] = []
    for attempt in range(1, 4):
        records, held = await _read_topic_once(kafka, topic)
        if len(records) >= held:
            return records
        log(f"{topic}: read {len(records)} of {held} records (try {attempt} of 3)")
        await asyncio.sleep(2)
    return records


async def _read_topic_once(kafka: KafkaSettings, topic: str) -> tuple[list[TopicRecord], int]:
    """The records read, and how many the partitions' offsets say there are."""
    consumer = AIOKafkaConsumer(
        **kafka.client_options(),
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    records: list[TopicRecord] = []
    try:
        tps: list[TopicPartition] = []
        for _ in range(30):  # metadata may lag just after a broker restart
            tps = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            if tps:
                break
            await consumer._client.force_metadata_update()  # aiokafka has no public call
            await asyncio.sleep(1)
        if not tps:
            raise RuntimeError(f"no partition of {topic} is known to the broker's metadata")
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        held = sum(ends[tp] - starts[tp] for tp in tps)
        await consumer.seek_to_beginning(*tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + 180
        idle_since = time.monotonic()
        while remaining and time.monotonic() < deadline:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=10_000)
            for items in batch.values():
                for r in items:
                    if r.offset < ends[TopicPartition(r.topic, r.partition)]:
                        records.append(TopicRecord(r.topic, r.partition, r.offset, r.value))
            if any(batch.values()):
                idle_since = time.monotonic()
            for tp in list(remaining):  # every partition, not only those that returned records
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            if remaining and time.monotonic() - idle_since > IDLE_S:
                # Nothing more to read, short of the end offsets taken right after a broker
                # restart: say so and go on; the checks then fail on anything really missing.
                short = {
                    f"{tp.partition}": (await consumer.position(tp), ends[tp]) for tp in remaining
                }
                log(f"{topic}: nothing more after {IDLE_S:.0f} s; (position, end) {short}")
                break
        if remaining and time.monotonic() >= deadline:
            raise RuntimeError(f"could not read {topic} to its end")
    finally:
        await consumer.stop()
    return records, held


async def lag_of(kafka: KafkaSettings, group: str, topics: list[str]) -> int:
    """Total lag of a group on every partition of ``topics`` (no commit yet = from 0)."""
    committed = await committed_offsets(kafka, group)
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # aiokafka has no public call
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
    finally:
        await consumer.stop()
    return sum(max(ends[tp] - committed.get(tp, starts[tp]), 0) for tp in tps)


def record_json(value: bytes | None) -> dict[str, Any] | None:
    """A record's value as a JSON object; None when it is empty, not JSON or not an object."""
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None
