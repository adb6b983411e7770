"""Redrive sends back only what was really parked: a dead letter written by another principal
(every consumer may write its ``.dlq`` twins) is refused, and nothing goes out in its place."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from tpp_contracts.envelope import encode, wrap
from tpp_contracts.topics import ENROLLMENTS, SESSIONS
from tpp_ops import cli as ops
from tpp_plumbing.messaging import deadletter
from tpp_plumbing.settings import KafkaSettings
from tpp_testkit import Infrastructure
from typer.testing import CliRunner, Result

from .operations_support import accepted, created, own_topics, produce

pytestmark = pytest.mark.integration


@pytest.fixture
def secured(infrastructure: Infrastructure) -> Infrastructure:
    if not infrastructure.acls:
        pytest.skip("Kafka without the roles' principals: any client may write anything")
    return infrastructure


async def cli(env: dict[str, str], *args: str) -> Result:
    """Run ``tpp-ops ARGS`` (in a thread: it runs its own event loop)."""

    def invoke() -> Result:
        return CliRunner().invoke(ops.app, list(args), env=env | {"COLUMNS": "400"})

    return await asyncio.to_thread(invoke)


async def records_of(kafka: KafkaSettings, topic: str) -> list[ConsumerRecord[Any, Any]]:
    """Every record of ``topic`` up to its end, as the admin sees them."""
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(3)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        out: list[ConsumerRecord[Any, Any]] = []
        while sum(ends.values()) > len(out):
            batch = await consumer.getmany(*tps, timeout_ms=10_000)
            assert batch, f"{topic}: {len(out)} of {sum(ends.values())} records read"
            out += [r for records in batch.values() for r in records]
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


def forged_headers(topic: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
    """The dead-letter headers a genuine parker would write, for any claim."""
    return [
        (deadletter.ORIGINAL_TOPIC, topic.encode()),
        (deadletter.ORIGINAL_PARTITION, str(partition).encode()),
        (deadletter.ORIGINAL_OFFSET, str(offset).encode()),
        (deadletter.KIND, b"failed"),
        (deadletter.ERROR, b"handler failed: builtins.RuntimeError"),
        (deadletter.ATTEMPTS, b"3"),
        (deadletter.GROUP, b"reporting"),
    ]


async def test_a_dead_letter_forged_by_reporting_is_not_redriven_into_a_registry_topic(
    secured: Infrastructure,
) -> None:
    async with own_topics(secured, ENROLLMENTS.name, SESSIONS.name) as prefix:
        kafka = secured.kafka.with_prefix(prefix)
        reporting = secured.as_role("reporting", kafka)
        sessions, enrollments = kafka.topic(SESSIONS.name), kafka.topic(ENROLLMENTS.name)
        session_id = uuid.uuid4()
        # Reporting may write no event topic, but it may write the dead letters of the
        # enrollments it consumes: it plants a session event there.
        forged = wrap(created(session_id), source="/registry")
        await produce(
            reporting,
            enrollments + deadletter.SUFFIX,
            [(str(session_id).encode(), encode(forged))],
            partition=0,
            headers=forged_headers(sessions, 0, 0),
        )

        result = await cli(secured.kafka_env(kafka), "dlq", "redrive", ENROLLMENTS.name, "0:0")

        assert await records_of(kafka, sessions) == [], "the forged event was published"
        assert await records_of(kafka, enrollments) == []
        assert result.exit_code == 2, result.output
        assert (
            f"refused 0:0: it claims to come from {sessions}, but was parked on the"
            f" dead-letter topic of {enrollments}" in result.output
        )
        assert "redrove 0 message(s)" in result.output


async def test_redrive_pending_sends_the_true_copy_and_refuses_each_forgery(
    secured: Infrastructure,
) -> None:
    async with own_topics(secured, ENROLLMENTS.name, SESSIONS.name) as prefix:
        kafka = secured.kafka.with_prefix(prefix)
        reporting = secured.as_role("reporting", kafka)
        sessions, enrollments = kafka.topic(SESSIONS.name), kafka.topic(ENROLLMENTS.name)
        dlq = enrollments + deadletter.SUFFIX
        session_id = uuid.uuid4()
        key = str(session_id).encode()
        parked, other = (wrap(accepted(session_id), source="/enrollment") for _ in range(2))
        await produce(
            kafka, enrollments, [(key, encode(parked)), (key, encode(other))], partition=0
        )
        first, second = await records_of(kafka, enrollments)

        # Reporting's consumer really parks the first event (as the runner does).
        sink = deadletter.DeadLetterSink(reporting)
        try:
            await sink.park(first, group="reporting", kind="failed", error="e", attempts=3)
        finally:
            await sink.close()
        [genuine] = await deadletter.read_dead_letters(kafka, dlq)
        # Then, as reporting, two forgeries: an event that never happened, named after the
        # second record of its own origin topic; the second record under another key.
        invented = wrap(accepted(session_id), source="/enrollment")
        await produce(
            reporting,
            dlq,
            [(key, encode(invented))],
            partition=0,
            headers=forged_headers(enrollments, 0, 1),
        )
        await produce(
            reporting,
            dlq,
            [(uuid.uuid4().bytes, second.value)],
            partition=0,
            headers=forged_headers(enrollments, 0, 1),
        )

        env = secured.kafka_env(kafka)
        result = await cli(env, "dlq", "redrive", ENROLLMENTS.name, "--pending")

        assert result.exit_code == 2, result.output
        assert "redrove 1 message(s)" in result.output
        assert (
            f": its value differs from the original's at 0:1 (event {invented.id},"
            f" the original is {other.id})" in result.output
        )
        assert ": its key differs from the original's at 0:1" in result.output
        assert "refused 2 message(s)" in result.output
        # Only the parked event came back, as the original record, saying where it comes from.
        *_, copy = await records_of(kafka, enrollments)
        assert [r.value for r in await records_of(kafka, enrollments)] == [
            encode(parked),
            encode(other),
            encode(parked),
        ]
        assert (copy.key, dict(copy.headers)[deadletter.REDRIVEN_FROM]) == (
            key,
            f"{dlq}/{genuine.ref}".encode(),
        )
        assert await records_of(kafka, sessions) == []

        # The refusals were reported once: the next --pending has nothing left.
        again = await cli(env, "dlq", "redrive", ENROLLMENTS.name, "--pending")
        assert again.exit_code == 0, again.output
        assert "redrove 0 message(s)" in again.output
