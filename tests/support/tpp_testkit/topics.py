"""This run's Kafka topics and outside subscribers, granted as on the stack: fixtures."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from tpp_ops import acl as platform_acl
from tpp_plumbing.messaging import acl, kafka_admin, topic_reconcile, topics
from tpp_plumbing.settings import KafkaSettings

from tpp_testkit.infrastructure import Infrastructure
from tpp_testkit.stalls import bounded_teardown


@contextlib.asynccontextmanager
async def topics_under(infrastructure: Infrastructure, prefix: str) -> AsyncIterator[KafkaSettings]:
    """Kafka settings (admin) for ``prefix``: every platform topic (and its ``.dlq`` twin)
    exists and each role's principal may use them as on the stack; all deleted at the end."""
    settings = infrastructure.kafka.with_prefix(prefix)
    admin = AIOKafkaAdminClient(**settings.client_options())
    await admin.start()
    # Each topic and its dead-letter twin, laid out as deploy/stack.sh lays them out.
    specs = topics.plan(topics.TopicSettings(), settings.topic_prefix)
    names = [spec.name for spec in specs]
    try:
        await topic_reconcile.reconcile(admin, specs)
        await infrastructure.grant(settings.topic_prefix)
        yield settings
    finally:
        await bounded_teardown(infrastructure.revoke(settings.topic_prefix), "revoking ACLs")
        await bounded_teardown(admin.delete_topics(names), "deleting the run's topics")
        await bounded_teardown(admin.close(), "the Kafka admin client")


@pytest.fixture(scope="session")
async def kafka(infrastructure: Infrastructure, run_id: str) -> AsyncIterator[KafkaSettings]:
    """Kafka settings (admin) with this run's topic prefix; the topics (and ``.dlq`` twins)
    exist and each role's principal may use them as on the stack (see
    ``tpp_ops.acl``)."""
    async with topics_under(infrastructure, f"{run_id}.") as settings:
        yield settings


@pytest.fixture
async def subscriber(
    infrastructure: Infrastructure, kafka: KafkaSettings
) -> AsyncIterator[KafkaSettings]:
    """``kafka`` as a new outside subscriber (see :func:`subscriber_of`)."""
    async with subscriber_of(infrastructure, kafka) as settings:
        yield settings


@contextlib.asynccontextmanager
async def subscriber_of(
    infrastructure: Infrastructure, kafka: KafkaSettings
) -> AsyncIterator[KafkaSettings]:
    """``kafka`` as a new outside subscriber (``acl`` role ``subscriber``: reads the event
    topics, commits in groups ``<user>.*``, writes nothing), created on the running broker
    and removed at the end. Its user name is ``kafka.username``; an open broker has none."""
    if not infrastructure.acls:
        yield kafka
        return
    user, password = f"subscriber-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    bindings = platform_acl.layout(kafka.topic_prefix, {"subscriber": user})
    await kafka_admin.set_scram_users(infrastructure.kafka, {user: password})
    await acl.grant(infrastructure.kafka, bindings)
    try:
        yield kafka.as_principal(user, password)
    finally:
        await bounded_teardown(acl.revoke(infrastructure.kafka, bindings), "subscriber ACLs")
        await bounded_teardown(
            kafka_admin.set_scram_users(infrastructure.kafka, {user: ""}, delete=True),
            "subscriber user",
        )
