"""A three-node Kafka cluster from ``deploy/stack.sh`` (``TPP_KAFKA_BROKERS=3``): the topics
are replicated three times and need two in-sync replicas, and when one node is killed
(``kill -9``) acks=all producers and consumers carry on: nothing acknowledged is lost,
nothing is written twice, each key's events stay in order.

The cluster is a stack of its own (``TPP_STACK_ENV`` / ``TPP_STACK_DIR`` in a temporary
folder, on free ports far from the shared stack's), started with ``up kafka`` (no
PostgreSQL) and always stopped at the end, whatever the test did.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError
from tpp_contracts.topics import ALL as ALL_TOPICS
from tpp_contracts.topics import ENROLLMENTS
from tpp_plumbing.settings import KafkaSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NODES = 3
#: Where to look for six free ports in a row (three nodes: client and controller port each).
PORT_RANGE = range(39_100, 39_900, 20)
#: Values read, by key, in the order read.
Seen = dict[str, list[int]]


def _free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports() -> int:
    """The first port of 2 * NODES free ports in a row (the nodes' client/controller pairs)."""
    for base in PORT_RANGE:
        if all(_free(base + i) for i in range(2 * NODES)):
            return base
    raise RuntimeError(f"no {2 * NODES} free ports in a row in {PORT_RANGE}")


def _env_file(local_env: str, base: int) -> str:
    """deploy/local.env with Kafka on ``base`` (controller on base + 1) and PostgreSQL's
    port moved off the shared stack's (this stack starts none, but ``down`` looks for it)."""
    lines = []
    for line in local_env.splitlines():
        if line.startswith("TPP_KAFKA_BOOTSTRAP="):
            line = f"TPP_KAFKA_BOOTSTRAP=127.0.0.1:{base}"
        lines.append(line.replace(":55432/", f":{base + 2 * NODES}/"))
    lines += [f"TPP_KAFKA_CONTROLLER_PORT={base + 1}", f"TPP_KAFKA_BROKERS={NODES}"]
    return "\n".join(lines) + "\n"


@dataclass
class Cluster:
    """The running cluster: where it keeps its files and how to reach it as the admin."""

    home: Path
    env: dict[str, str]
    kafka: KafkaSettings

    def stack(self, *command: str, timeout: float = 180) -> str:
        """``deploy/stack.sh <command>`` on this cluster's env file and folder; its output."""
        done = subprocess.run(  # noqa: S603 - our own script
            [str(ROOT / "deploy" / "stack.sh"), *command],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode:
            raise AssertionError(f"stack.sh {' '.join(command)}: {done.stdout}{done.stderr}")
        return done.stdout

    def pid(self, node: int) -> int:
        return int((self.home / "kafka" / f"node-{node}" / "kafka.pid").read_text())

    def kill_leftovers(self) -> None:
        """SIGKILL whatever node ``down`` did not stop (the test must never leave one)."""
        for pid_file in (self.home / "kafka").glob("node-*/kafka.pid"):
            try:
                pid = int(pid_file.read_text())
                if "kafka.Kafka" in Path(f"/proc/{pid}/cmdline").read_text():
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                continue


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if shutil.which("java") is None:
        pytest.skip("no java: the local stack's Kafka jars cannot run here")
    folder = tmp_path_factory.mktemp("cluster")
    base = _free_ports()
    env_file = folder / "local.env"
    env_file.write_text(_env_file((ROOT / "deploy" / "local.env").read_text(), base))
    file_env = {
        key: value
        for key, _, value in (
            line.partition("=") for line in env_file.read_text().splitlines() if "=" in line
        )
        if not key.startswith("#")
    }
    # Nothing of the caller's stack (TPP_*) leaks in: the env file says it all.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TPP_")}
    env |= {"TPP_STACK_ENV": str(env_file), "TPP_STACK_DIR": str(folder / "stack")}
    bootstrap = ",".join(f"127.0.0.1:{base + 2 * i}" for i in range(NODES))
    kafka = KafkaSettings.from_env(file_env | {"TPP_KAFKA_BOOTSTRAP": bootstrap})
    running = Cluster(folder / "stack", env, kafka)
    try:
        started = time.monotonic()
        output = running.stack("up", "kafka")
        took = time.monotonic() - started
        print(f"\n{NODES}-node cluster on {bootstrap} up in {took:.1f} s\n{output}")
        yield running
    finally:
        try:
            running.stack("down", timeout=120)
        finally:
            running.kill_leftovers()


@pytest.fixture
async def admin(cluster: Cluster) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(**cluster.kafka.client_options(), request_timeout_ms=10_000)
    await client.start()
    yield client
    await client.close()


async def test_topics_are_replicated_three_times_with_two_in_sync(
    admin: AIOKafkaAdminClient,
) -> None:
    names = [t.name + suffix for t in ALL_TOPICS for suffix in ("", ".dlq")]
    for topic in await admin.describe_topics(names):
        assert topic["error_code"] == 0, topic
        assert {len(p["replicas"]) for p in topic["partitions"]} == {3}, topic["topic"]
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    (response,) = await admin.describe_configs(resources)
    for resource in response.to_object()["resources"]:
        entries = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
        assert entries["min.insync.replicas"] == "2", resource["resource_name"]


async def _produce(producer: AIOKafkaProducer, topic: str, batch: range) -> None:
    """One record per number, keyed by number % 20; each send acknowledged by the cluster."""
    sends = [
        await producer.send(topic, key=f"k{n % 20}".encode(), value=str(n).encode()) for n in batch
    ]
    await asyncio.gather(*sends)


async def _described(admin: AIOKafkaAdminClient, topic: str) -> dict[str, Any]:
    """The topic's metadata, asked again while the admin client picks the killed node (the
    cluster fences it only after its session times out)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            (described,) = await admin.describe_topics([topic])
            return cast(dict[str, Any], described)
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _consume(kafka: KafkaSettings, topic: str, partitions: list[int], count: int) -> Seen:
    """Read ``topic`` from the beginning until ``count`` records came (or 90 s passed): values
    by key, in the order read. No consumer group: nothing is read twice by a rebalance."""
    seen: Seen = defaultdict(list)
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        deadline = time.monotonic() + 90
        while sum(map(len, seen.values())) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    seen[record.key.decode()].append(int(record.value))
    finally:
        await consumer.stop()
    return seen


async def test_a_node_killed_loses_nothing_acknowledged(
    cluster: Cluster, admin: AIOKafkaAdminClient
) -> None:
    topic = ENROLLMENTS.name
    described = await _described(admin, topic)
    partitions = sorted(p["partition"] for p in described["partitions"])
    leaders: Counter[int] = Counter(p["leader"] for p in described["partitions"])
    victim = leaders.most_common(1)[0][0]
    # A reader from the start: it keeps reading while the node dies.
    reader = asyncio.create_task(_consume(cluster.kafka, topic, partitions, 600))
    producer = AIOKafkaProducer(
        **cluster.kafka.client_options(), acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        await _produce(producer, topic, range(0, 300))
        os.kill(cluster.pid(victim), signal.SIGKILL)
        # Acknowledged only once two replicas have each record: the survivors.
        await asyncio.wait_for(_produce(producer, topic, range(300, 600)), 60)
    finally:
        await producer.stop()
        seen = await reader

    values = sorted(v for vs in seen.values() for v in vs)
    assert values == list(range(600)), "records lost or written twice"
    for key, numbers in seen.items():
        assert numbers == sorted(numbers), f"{key}'s records out of order"
    after = await _described(admin, topic)
    assert victim not in {p["leader"] for p in after["partitions"]}
