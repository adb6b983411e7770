"""``tpp-ops replay``: move a stopped consumer group's offsets back to a point in time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from tpp_ops.commands._shared import console, fail, run
from tpp_ops.offsets import commit_offsets, committed_offsets
from tpp_ops.settings import kafka_settings

if TYPE_CHECKING:
    from aiokafka import TopicPartition


def replay(
    group: Annotated[str, typer.Argument(help="Consumer group, e.g. reporting.")],
    since: Annotated[
        datetime, typer.Option(help="Replay events from this time on (ISO 8601; UTC if naive).")
    ],
    topic: Annotated[
        list[str] | None, typer.Option(help="Only these topics (default: all it committed on).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the new offsets only.")] = False,
) -> None:
    """Move a consumer group's offsets back to a time; its inbox skips what it applied.

    The group's consumers must be stopped (e.g. TPP_<SERVICE>_CONSUMERS_ENABLED=false on
    every replica); Kafka refuses the commit while members are running.
    """
    when = since if since.tzinfo else since.replace(tzinfo=UTC)
    run(lambda: _replay(group, when, topic, dry_run))


async def _replay(group: str, when: datetime, topics: list[str] | None, dry_run: bool) -> None:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient
    from rich.table import Table
    from tpp_plumbing.messaging import deadletter

    kafka = kafka_settings()
    full = kafka.topic(group)
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        [described] = await admin.describe_consumer_groups([full])
    finally:
        await admin.close()
    members = described.groups[0][5] if getattr(described, "groups", None) else []
    if members and not dry_run:
        fail(f"group {group} has {len(members)} running member(s): stop its consumers first")
    committed = await committed_offsets(kafka, full)
    wanted = {kafka.topic(t) for t in topics} if topics else {tp.topic for tp in committed}
    partitions: list[TopicPartition] = []
    for name in sorted(wanted):
        partitions += await deadletter.partitions_of(kafka, name)
    if not partitions:
        fail(f"nothing to replay for group {group}")
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None)
    await consumer.start()
    try:
        stamp = int(when.timestamp() * 1000)
        found = await consumer.offsets_for_times(dict.fromkeys(partitions, stamp))
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    offsets = {tp: (found[tp].offset if found[tp] is not None else ends[tp]) for tp in partitions}
    table = Table("topic", "partition", "committed", "new offset", "events to replay")
    for tp, offset in sorted(offsets.items()):
        before = committed.get(tp)
        table.add_row(
            tp.topic.removeprefix(kafka.topic_prefix),
            str(tp.partition),
            "-" if before is None else str(before),
            str(offset),
            str(ends[tp] - offset),
        )
    console().print(table)
    if dry_run:
        console().print("dry run: nothing committed")
        return
    await commit_offsets(kafka, full, offsets)
    console().print(f"group {group} will replay from {when.isoformat()} when its consumers start")
