"""Kafka authentication and ACLs: each service's principal writes only its own topics and reads
only what it consumes; wrong or missing credentials are refused (SASL/SCRAM, deny by default).

These run against the local stack (or any broker given by ``TPP_KAFKA_*`` with the roles'
credentials); a broker without SASL (e.g. testcontainers) has nothing to check.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
)
from tpp_contracts.topics import ALL as ALL_TOPICS
from tpp_contracts.topics import ORGANIZERS, SESSIONS, TRAINEES
from tpp_ops.platform import DECLARATIONS
from tpp_plumbing.messaging import acl
from tpp_plumbing.messaging.deadletter import SUFFIX
from tpp_plumbing.settings import KafkaSettings
from tpp_testkit import Infrastructure, Platform

DECLARED = {d.service: d for d in DECLARATIONS}


@pytest.fixture
def secured(infrastructure: Infrastructure) -> Infrastructure:
    if not infrastructure.acls:
        pytest.skip(
            f"Kafka at {infrastructure.bootstrap} runs {infrastructure.kafka.security_protocol}"
            " without the roles' credentials: no authentication or ACLs to test"
        )
    return infrastructure


@pytest.fixture
async def topics(secured: Infrastructure, kafka: KafkaSettings) -> KafkaSettings:
    """This run's topics (the ``kafka`` fixture granted its prefix to every role)."""
    return kafka


async def send_to_partition_0(kafka: KafkaSettings, topic: str) -> None:
    """One record on partition 0 of ``topic`` as ``kafka``'s principal."""
    producer = AIOKafkaProducer(**kafka.client_options(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=uuid.uuid4().bytes, partition=0)
    finally:
        await producer.stop()


async def send(kafka: KafkaSettings, topic: str) -> int:
    """Produce one record as ``kafka``'s principal (idempotent, acks=all); returns its offset."""
    producer = AIOKafkaProducer(
        **kafka.client_options(), acks="all", enable_idempotence=True, request_timeout_ms=10_000
    )
    try:
        await producer.start()
        meta = await producer.send_and_wait(topic, key=b"acl-test", value=uuid.uuid4().bytes)
    finally:
        await producer.stop()  # also after a refused start: no unclosed client left behind
    return int(meta.offset)


async def send_plain(kafka: KafkaSettings, topic: str) -> None:
    """Produce one record as ``kafka``'s principal without idempotence (no producer id)."""
    producer = AIOKafkaProducer(**kafka.client_options(), enable_idempotence=False)
    try:
        await producer.start()
        await producer.send_and_wait(topic, key=b"acl-test", value=uuid.uuid4().bytes)
    finally:
        await producer.stop()


@pytest.fixture
async def reader(topics: KafkaSettings) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer as the admin, to see what was really written."""
    consumer = AIOKafkaConsumer(**topics.client_options(), group_id=None)
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def read_as(kafka: KafkaSettings, topic: str, group: str | None = None) -> int:
    """Records fetched from partition 0 of ``topic`` as ``kafka``'s principal within 3 s
    (committing in ``group`` when given)."""
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        fetched = await consumer.getmany(tp, timeout_ms=3000)
        if group is not None:
            await consumer.commit({tp: 0})
        return sum(len(records) for records in fetched.values())
    finally:
        await consumer.stop()


async def describable(kafka: KafkaSettings, topic: str) -> bool:
    """Whether ``kafka``'s principal may see the topic at all (READ implies DESCRIBE)."""
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    code = int(described["error_code"])
    if code not in (0, TopicAuthorizationFailedError.errno):
        raise AssertionError(f"unexpected error {code} describing {topic}")
    return code == 0


async def test_enrollment_cannot_write_a_registry_topic_but_writes_its_own(
    secured: Infrastructure, topics: KafkaSettings, reader: AIOKafkaConsumer
) -> None:
    enrollment = secured.as_role("enrollment", topics)
    registry_topic = topics.topic(SESSIONS.name)
    before = await reader.end_offsets([TopicPartition(registry_topic, p) for p in range(6)])

    with pytest.raises(TopicAuthorizationFailedError):
        await send(enrollment, registry_topic)

    own = topics.topic(TRAINEES.name)
    offset = await send(enrollment, own)
    after = await reader.end_offsets([TopicPartition(registry_topic, p) for p in range(6)])
    assert after == before, "nothing reached the registry topic"
    assert offset >= 0
    ends = await reader.end_offsets([TopicPartition(own, p) for p in range(TRAINEES.partitions)])
    assert sum(ends.values()) >= 1


async def test_registry_writes_only_registry_topics(
    secured: Infrastructure, topics: KafkaSettings
) -> None:
    registry = secured.as_role("registry", topics)

    assert await send(registry, topics.topic(SESSIONS.name)) >= 0
    with pytest.raises(TopicAuthorizationFailedError):
        await send(registry, topics.topic(TRAINEES.name))


@pytest.mark.parametrize("topic", [t.name for t in ALL_TOPICS])
async def test_reporting_cannot_write_any_event_topic(
    secured: Infrastructure, topics: KafkaSettings, topic: str
) -> None:
    reporting = secured.as_role("reporting", topics)

    with pytest.raises(TopicAuthorizationFailedError):
        await send(reporting, topics.topic(topic))


async def test_a_consumer_parks_poison_only_on_dead_letters_of_what_it_consumes(
    secured: Infrastructure, topics: KafkaSettings
) -> None:
    enrollment = secured.as_role("enrollment", topics)

    assert await send(enrollment, topics.topic(SESSIONS.name) + SUFFIX) >= 0
    with pytest.raises(TopicAuthorizationFailedError):
        await send(enrollment, topics.topic(ORGANIZERS.name) + SUFFIX)


async def test_a_service_reads_only_what_it_consumes_in_its_own_group(
    secured: Infrastructure, topics: KafkaSettings
) -> None:
    enrollment = secured.as_role("enrollment", topics)
    sessions, organizers = topics.topic(SESSIONS.name), topics.topic(ORGANIZERS.name)
    for topic in (sessions, organizers):
        await send_to_partition_0(topics, topic)

    assert await read_as(enrollment, sessions, group=topics.topic("enrollment-acl-test")) >= 1
    # Not consumed by enrollment: the broker hides the topic and serves nothing from it.
    assert await describable(enrollment, sessions)
    assert not await describable(enrollment, organizers)
    assert await read_as(enrollment, organizers) == 0
    assert await read_as(topics, organizers) >= 1, "the admin does read it"
    with pytest.raises(GroupAuthorizationFailedError):
        await read_as(enrollment, sessions, group=topics.topic("reporting-acl-test"))


async def test_a_wrong_password_is_refused(
    secured: Infrastructure, topics: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    user, password = secured.principals["enrollment"]
    own_topic = topics.topic(TRAINEES.name)
    assert await send(topics.as_principal(user, password), own_topic) >= 0

    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(send(topics.as_principal(user, "not-" + password), own_topic), 30)
    assert "SaslAuthenticationFailed" in caplog.text


async def test_an_unauthenticated_client_is_refused(secured: Infrastructure) -> None:
    anonymous = KafkaSettings(bootstrap=secured.kafka.bootstrap, security_protocol="PLAINTEXT")

    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(send(anonymous, TRAINEES.name), 30)


async def test_the_services_run_as_their_own_principals_on_their_own_topics(
    secured: Infrastructure, platform: Platform
) -> None:
    prefix = platform.kafka.topic_prefix
    for name in ("registry", "enrollment", "reporting"):
        runtime = getattr(platform, name).runtime
        assert runtime.settings.kafka.username == secured.principals[name][0]
        consumed = {topic for runner in runtime.runners for topic in runner.topics}
        # The ACL layout grants a service reading exactly the topics it subscribes to.
        assert consumed == {prefix + t.name for t in DECLARED[name].consumes}


# ------------------------------------------------------------------ outside subscribers


async def test_a_subscriber_reads_every_event_topic_in_its_own_group(
    secured: Infrastructure, topics: KafkaSettings, subscriber: KafkaSettings
) -> None:
    own_group = acl.subscriber_group_prefix(subscriber.username or "", topics.topic_prefix)
    for t in ALL_TOPICS:
        await send_to_partition_0(topics, topics.topic(t.name))

    for t in ALL_TOPICS:
        assert await read_as(subscriber, topics.topic(t.name), group=own_group + "alumni") >= 1


@pytest.mark.parametrize("topic", [t.name for t in ALL_TOPICS])
async def test_a_subscriber_cannot_write_any_topic(
    secured: Infrastructure, topics: KafkaSettings, subscriber: KafkaSettings, topic: str
) -> None:
    # Idempotent (refused its producer id: no WRITE anywhere) and plain (refused per topic).
    for target in (topics.topic(topic), topics.topic(topic) + SUFFIX):
        with pytest.raises(ClusterAuthorizationFailedError):
            await send(subscriber, target)
        with pytest.raises(TopicAuthorizationFailedError):
            await send_plain(subscriber, target)


async def test_a_subscriber_sees_no_dead_letters_and_no_other_group(
    secured: Infrastructure, topics: KafkaSettings, subscriber: KafkaSettings
) -> None:
    sessions = topics.topic(SESSIONS.name)
    await send_to_partition_0(topics, sessions + SUFFIX)
    # Another consumer's group, with offsets committed: the subscriber may neither read them
    # nor commit there (it would move that consumer's position).
    reporting = secured.as_role("reporting", topics)
    reporting_group = topics.topic("reporting-offsets-test")
    await send_to_partition_0(topics, sessions)
    assert await read_as(reporting, sessions, group=reporting_group) >= 1

    assert not await describable(subscriber, sessions + SUFFIX)
    assert await read_as(subscriber, sessions + SUFFIX) == 0
    with pytest.raises(GroupAuthorizationFailedError):
        await read_as(subscriber, sessions, group=reporting_group)
    admin = AIOKafkaAdminClient(**subscriber.client_options())
    await admin.start()
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            await admin.list_consumer_group_offsets(reporting_group)
    finally:
        await admin.close()
