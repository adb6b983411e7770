"""Consumer group offsets seen from outside the group: committed, lag, and moved by hand."""

from __future__ import annotations

from typing import TYPE_CHECKING

# aiokafka is imported by the functions: tpp-ops token must start without it.
if TYPE_CHECKING:
    from aiokafka import TopicPartition
    from tpp_plumbing.settings import KafkaSettings


async def committed_offsets(kafka: KafkaSettings, group: str) -> dict[TopicPartition, int]:
    """A group's committed offsets."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def group_lag(kafka: KafkaSettings, group: str) -> dict[TopicPartition, tuple[int, int]]:
    """(committed, high-water mark) per partition the group has committed on."""
    from aiokafka import AIOKafkaConsumer

    committed = await committed_offsets(kafka, group)
    if not committed:
        return {}
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(list(committed))
    finally:
        await consumer.stop()
    return {tp: (committed[tp], ends[tp]) for tp in sorted(committed)}


async def commit_offsets(
    kafka: KafkaSettings, group: str, offsets: dict[TopicPartition, int]
) -> None:
    """Commit offsets for a group that has no running members."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()
