"""Faults injected during the run: kill -9 of a service, broker and PostgreSQL restarts,
duplicate deliveries and poison messages; in the cluster form, kill -9 of the Kafka node that
leads most partitions, kill -9 of one replica of a service while the other serves, and a
rolling restart of every replica (a deploy).

Faults are placed at random points of the load's progress and run one after the other; each
one is healed (the process restarted, the service ready again) before the next starts.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from tpp_contracts import TOPIC_EVENTS
from tpp_contracts.topics import ALL as ALL_TOPICS
from tpp_contracts.topics import ENROLLMENTS, SESSIONS
from tpp_reporting.readers import KNOWN_TYPES

from tests.chaos.load import Load
from tests.chaos.stack import MAX_MESSAGE_BYTES, SERVICES, ChaosStack, log
from tests.chaos.topic_reads import record_json

#: Which consumer groups read which topic (reporting reads all, enrollment the sessions).
CONSUMERS: dict[str, tuple[str, ...]] = {
    topic.name: ("enrollment", "reporting") if topic.name == SESSIONS.name else ("reporting",)
    for topic in ALL_TOPICS
}


@dataclass(frozen=True)
class Injected:
    """A message the suite produced: where it landed and what kind it is."""

    topic: str
    partition: int
    offset: int
    kind: str


@dataclass
class FaultLog:
    """What was injected, and how long each fault took to heal."""

    events: list[tuple[str, float]] = field(default_factory=list)  # (what, seconds to heal)
    poison: list[Injected] = field(default_factory=list)
    unknown: list[Injected] = field(default_factory=list)
    duplicates: int = 0
    duplicated_ids: set[str] = field(default_factory=set)
    #: Client requests sent while replicas were restarted one by one, and those that failed.
    rolling_requests: int = 0
    rolling_failed: int = 0

    def count(self, prefix: str) -> int:
        return sum(1 for what, _ in self.events if what.startswith(prefix))


def plan(
    rng: random.Random,
    *,
    kills_per_service: int,
    broker: int,
    postgres: int,
    duplicates: int,
    poison: int,
    rolling: int = 0,
) -> list[tuple[float, str]]:
    """Faults at random progress points (5 %..85 %), in random order."""
    kinds = [f"kill:{name}" for name in SERVICES for _ in range(kills_per_service)]
    kinds += ["broker"] * broker + ["postgres"] * postgres + ["rolling"] * rolling
    kinds += ["duplicates"] * duplicates + ["poison"] * poison
    rng.shuffle(kinds)
    points = sorted(rng.uniform(0.05, 0.85) for _ in kinds)
    return list(zip(points, kinds, strict=True))


class Faults:
    """Runs a fault plan against the stack while the load runs."""

    def __init__(
        self, stack: ChaosStack, load: Load, rng: random.Random, *, duplicate_sample: int
    ) -> None:
        self.stack = stack
        self.load = load
        self.rng = rng
        self.duplicate_sample = duplicate_sample
        self.log = FaultLog()

    async def run(self, schedule: list[tuple[float, str]]) -> None:
        for point, kind in schedule:
            await self.load.reached(point)
            started = time.monotonic()
            await self.inject(kind)
            healed = time.monotonic() - started
            self.log.events.append((kind, healed))
            log(f"fault {kind} at {self.load.progress:.0%} of the load: healed in {healed:.1f} s")

    async def inject(self, kind: str) -> None:
        if kind.startswith("kill:") and self.stack.replicas > 1:
            # One replica dies; the other serves alone for a few seconds, then it comes back.
            replica = self.rng.choice(self.stack.replicas_of(kind.split(":", 1)[1]))
            log(f"kill -9 of {replica.name} (port {replica.port})")
            self.stack.kill(replica.name)
            await asyncio.sleep(self.rng.uniform(2.0, 6.0))
            self.stack.start(replica.name)
            await self.wait_ready(replica.name)
        elif kind.startswith("kill:"):
            name = kind.split(":", 1)[1]
            self.stack.kill(name)
            await asyncio.sleep(self.rng.uniform(0.0, 2.0))
            self.stack.start(name)
            await self.wait_ready(name)
        elif kind == "broker" and self.stack.nodes > 1:
            node, led = await self.leader_of_most_partitions()
            log(f"kill -9 of Kafka node {node} (leads {led} partitions)")
            await asyncio.to_thread(self.stack.kill_node, node)
            await asyncio.sleep(self.rng.uniform(5.0, 10.0))  # the load runs on two nodes
            log(f"starting Kafka node {node} again")
            await asyncio.to_thread(self.stack.start_missing_nodes)
            await self.wait_ready(*self.stack.services)
        elif kind == "rolling":
            await self.rolling_restart()
        elif kind == "broker":
            hard = self.rng.random() < 0.5
            log(f"restarting the Kafka broker ({'SIGKILL' if hard else 'SIGTERM'})")
            await asyncio.to_thread(self.stack.restart_broker, hard=hard)
            await self.wait_ready(*self.stack.services)
        elif kind == "postgres":
            log("restarting PostgreSQL (pg_ctl restart -m immediate)")
            await asyncio.to_thread(self.stack.restart_postgres)
            await self.wait_ready(*self.stack.services)
        elif kind == "duplicates":
            await self.duplicate()
        elif kind == "poison":
            await self.inject_poison()
        else:
            raise ValueError(kind)

    async def wait_ready(self, *names: str) -> None:
        for name in names:
            try:
                await asyncio.to_thread(self.stack.wait_ready, name, 120.0)
            except RuntimeError as error:
                log(f"warning: {error}")
                raise

    async def leader_of_most_partitions(self) -> tuple[int, int]:
        """The node that leads most partitions of the platform's topics, and how many."""
        admin = AIOKafkaAdminClient(**self.stack.kafka.client_options(), request_timeout_ms=10_000)
        await admin.start()
        try:
            names = [t.name + suffix for t in ALL_TOPICS for suffix in ("", ".dlq")]
            deadline = time.monotonic() + 30
            while True:
                try:
                    described = await admin.describe_topics(names)
                    break
                except KafkaError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.5)
        finally:
            await admin.close()
        leaders = Counter(p["leader"] for t in described for p in t["partitions"])
        node, led = leaders.most_common(1)[0]
        return int(node), led

    async def rolling_restart(self) -> None:
        """A deploy: every replica of every service in turn stopped (SIGTERM, graceful) and
        started again, the next one only once it is ready. The client's requests meanwhile,
        and the share of them that failed, go to the log."""
        tally = self.load.tally
        requests, failed, kinds = tally.requests, tally.failed, dict(tally.failures)
        for name in self.stack.services:
            log(f"rolling restart: {name}")
            await asyncio.to_thread(self.stack.stop, name)
            self.stack.start(name)
            await self.wait_ready(name)
        sent, lost = tally.requests - requests, tally.failed - failed
        self.log.rolling_requests += sent
        self.log.rolling_failed += lost
        share = lost / sent if sent else 0.0
        what = {k: n - kinds.get(k, 0) for k, n in tally.failures.items() if n > kinds.get(k, 0)}
        log(f"rolling restart: {lost} of {sent} client requests failed ({share:.2%}): {what}")

    # ------------------------------------------------------------------ duplicates

    async def duplicate(self) -> None:
        """Copy a random sample of already published events back onto their topics."""
        total = 0
        for topic, share in ((ENROLLMENTS.name, 0.8), (SESSIONS.name, 0.2)):
            total += await self._duplicate_topic(topic, int(self.duplicate_sample * share))
        self.log.duplicates += total
        log(f"re-produced {total} already published events (duplicates)")

    async def _duplicate_topic(self, topic: str, sample: int) -> int:
        consumer = AIOKafkaConsumer(**self.stack.kafka.client_options(), group_id=None)
        producer = AIOKafkaProducer(
            **self.stack.kafka.client_options(), acks="all", enable_idempotence=True
        )
        await consumer.start()
        await producer.start()
        copied = 0
        try:
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            if not tps:
                tps = [TopicPartition(topic, p) for p in range(6)]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            per_partition = max(sample // len(tps), 1)
            for tp in tps:
                if ends[tp] == 0:
                    continue
                start = self.rng.randrange(0, max(ends[tp] - per_partition, 0) + 1)
                consumer.seek(tp, start)
                want = min(per_partition, ends[tp] - start)
                got = 0
                deadline = time.monotonic() + 10
                while got < want and time.monotonic() < deadline:
                    batch = await consumer.getmany(tp, timeout_ms=1000, max_records=want - got)
                    for record in batch.get(tp, []):
                        if got >= want:
                            break
                        event_id = _event_id(record.value)
                        if event_id is None:
                            continue  # a poison message injected earlier: not an event
                        await producer.send(
                            topic,
                            value=record.value,
                            key=record.key,
                            headers=list(record.headers or ()),
                        )
                        self.log.duplicated_ids.add(event_id)
                        got += 1
                copied += got
            await producer.flush()
        finally:
            await producer.stop()
            await consumer.stop()
        return copied

    # ------------------------------------------------------------------ poison

    async def inject_poison(self) -> None:
        """On every consumed topic: not JSON, not an envelope, schema-invalid, oversized —
        and one event of an unknown type (which consumers must ignore, not park)."""
        producer = AIOKafkaProducer(
            **self.stack.kafka.client_options(),
            acks="all",
            enable_idempotence=True,
            max_request_size=4 * MAX_MESSAGE_BYTES,
        )
        await producer.start()
        try:
            for topic in ALL_TOPICS:
                # A type every consumer of the topic projects (else it is not poison to it).
                known_type = next(m.type for m in TOPIC_EVENTS[topic.name] if m.type in KNOWN_TYPES)
                messages = {
                    "not JSON": b"\x00chaos: not json at all",
                    "not an envelope": json.dumps({"chaos": True, "id": "nope"}).encode(),
                    "schema-invalid": _envelope(known_type, {"chaos": "invalid"}),
                    "oversized": _envelope(
                        known_type, {"padding": "x" * (MAX_MESSAGE_BYTES + 10_000)}
                    ),
                    "unknown type": _envelope("tpp.chaos.unknown.v1", {"anything": 1}),
                }
                for kind, value in messages.items():
                    key = str(uuid.uuid4()).encode()
                    meta = await producer.send_and_wait(topic.name, value=value, key=key)
                    injected = Injected(topic.name, meta.partition, meta.offset, kind)
                    if kind == "unknown type":
                        self.log.unknown.append(injected)
                    else:
                        self.log.poison.append(injected)
        finally:
            await producer.stop()
        log(f"injected {len(self.log.poison)} poison and {len(self.log.unknown)} unknown so far")


def _envelope(event_type: str, data: dict[str, object]) -> bytes:
    event_id = str(uuid.uuid4())
    return json.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": "/chaos",
            "type": event_type,
            "time": datetime.now(UTC).isoformat(),
            "correlationid": event_id,
            "data": data,
        }
    ).encode()


def _event_id(value: bytes | None) -> str | None:
    parsed = record_json(value)
    if parsed is None or parsed.get("source") == "/chaos" or "data" not in parsed:
        return None
    return str(parsed.get("id"))
