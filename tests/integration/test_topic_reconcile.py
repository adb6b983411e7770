"""The topic command on a real broker: it creates what is missing, sets configs that differ
without touching an operator's own, and adds partitions only when told to (saying why not)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from tpp_contracts.topics import ALL as ALL_TOPICS
from tpp_contracts.topics import SESSIONS
from tpp_testkit import Infrastructure

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def admin(infrastructure: Infrastructure) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(**infrastructure.kafka.client_options())
    await client.start()
    yield client
    await client.close()


@pytest.fixture
async def prefix(admin: AIOKafkaAdminClient) -> AsyncIterator[str]:
    """A fresh topic prefix; whatever topics the test made under it are deleted at the end."""
    prefix = f"layout{uuid.uuid4().hex[:8]}."
    yield prefix
    names = [name for name in await admin.list_topics() if name.startswith(prefix)]
    if names:
        await admin.delete_topics(names)


def topic_invocation(
    infrastructure: Infrastructure, prefix: str, *args: str, **env: str
) -> tuple[list[str], dict[str, str]]:
    """``deploy/topics.py``'s command line and environment against the test's broker as its
    admin, with ``env`` added."""
    kafka = infrastructure.kafka
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TPP_TOPIC_")}
    environ |= {"TPP_KAFKA_SECURITY_PROTOCOL": kafka.security_protocol, **env}
    if kafka.username and kafka.password:
        environ |= {
            "TPP_KAFKA_USERNAME": kafka.username,
            "TPP_KAFKA_PASSWORD": kafka.password.get_secret_value(),
            "TPP_KAFKA_SASL_MECHANISM": kafka.sasl_mechanism,
        }
    command = [sys.executable, "deploy/topics.py", "--bootstrap", kafka.bootstrap]
    return [*command, "--wait", "30", "--prefix", prefix, *args], environ


def topic_command(
    infrastructure: Infrastructure, prefix: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """``deploy/topics.py`` against the test's broker as its admin, with ``env`` added."""
    command, environ = topic_invocation(infrastructure, prefix, *args, **env)
    return subprocess.run(  # noqa: S603 - our own script, fixed arguments
        command,
        env=environ,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_listing_into_a_reader_that_stops_early_is_quiet(
    infrastructure: Infrastructure, prefix: str
) -> None:
    """``topics.py --list | head``: the reader leaves before the list is written (its end of
    the pipe is closed at once here); the command says nothing about the broken pipe."""
    command, environ = topic_invocation(infrastructure, prefix, "--list")
    with subprocess.Popen(  # noqa: S603 - our own script, fixed arguments
        command, env=environ, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.close()
        errors = process.stderr.read()
        process.wait(timeout=120)
    assert errors == ""


async def partitions(admin: AIOKafkaAdminClient, name: str) -> int:
    (described,) = await admin.describe_topics([name])
    return len(described["partitions"])


async def configs(admin: AIOKafkaAdminClient, name: str) -> dict[str, str]:
    (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    (resource,) = response.to_object()["resources"]
    return {e["config_names"]: e["config_value"] for e in resource["config_entries"]}


async def settled_configs(
    admin: AIOKafkaAdminClient, name: str, key: str, want: str
) -> dict[str, str]:
    """The topic's configs once ``key`` reads ``want`` (15 s at most), else as they are: an
    altered config reaches the broker that answers through the metadata log, a moment later."""
    deadline = time.monotonic() + 15
    while True:
        current = await configs(admin, name)
        if current.get(key) == want or time.monotonic() > deadline:
            return current
        await asyncio.sleep(0.2)


async def test_the_topic_command_reconciles_a_running_cluster(
    infrastructure: Infrastructure, admin: AIOKafkaAdminClient, prefix: str
) -> None:
    sessions = prefix + SESSIONS.name
    # One topic already exists, kept for a day only and with an operator's own message limit.
    await admin.create_topics(
        [
            NewTopic(
                sessions,
                SESSIONS.partitions,
                1,
                topic_configs={"retention.ms": "86400000", "max.message.bytes": "2000000"},
            )
        ]
    )

    done = await asyncio.to_thread(topic_command, infrastructure, prefix)
    assert done.returncode == 0, done.stderr
    every = {prefix + t.name + s for t in ALL_TOPICS for s in ("", ".dlq")}
    assert every <= set(await admin.list_topics())
    assert f"created {sessions}\n" not in done.stdout
    assert f"created {sessions}.dlq\n" in done.stdout
    assert f"altered {sessions}: retention.ms 86400000 -> -1" in done.stdout
    current = await settled_configs(admin, sessions, "retention.ms", "-1")
    assert current["retention.ms"] == "-1"
    assert current["max.message.bytes"] == "2000000"  # not the layout's business: kept
    dlq = await settled_configs(admin, sessions + ".dlq", "retention.ms", "-1")
    assert dlq["retention.ms"] == "-1"

    # More partitions in the layout: refused, with the reason, and nothing changes.
    more = {"TPP_TOPIC_OVERRIDES": f'{{"{SESSIONS.name}": {{"partitions": 8}}}}'}
    refused = await asyncio.to_thread(topic_command, infrastructure, prefix, **more)
    assert refused.returncode == 1
    assert f"refused: {sessions} has 6 partitions, the layout says 8" in refused.stderr
    assert "re-maps keys" in refused.stderr
    assert "breaks per-key order" in refused.stderr
    assert "--allow-partition-increase" in refused.stderr
    assert await partitions(admin, sessions) == 6

    allowed = await asyncio.to_thread(
        topic_command, infrastructure, prefix, "--allow-partition-increase", **more
    )
    assert allowed.returncode == 0, allowed.stderr
    assert f"partitions of {sessions}: 6 -> 8" in allowed.stdout
    assert await partitions(admin, sessions) == 8
    assert await partitions(admin, sessions + ".dlq") == 8

    # Back to the contracts' 6: Kafka cannot shrink; said, not attempted, not a failure.
    again = await asyncio.to_thread(topic_command, infrastructure, prefix)
    assert again.returncode == 0, again.stderr
    assert "Kafka cannot remove partitions" in again.stderr
    assert await partitions(admin, sessions) == 8
