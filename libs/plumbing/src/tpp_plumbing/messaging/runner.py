"""Runs an EventConsumer on Kafka: joins the group, fetches, hands fetches to workers, stops.

The runner owns an aiokafka consumer in the service's group (no auto-commit). Each fetch is
handed to a worker (a batch consumer's fetch shared out by partition between up to
``concurrency`` workers: ``split``) and no more of its partitions' records are handed out
until the worker is done (``partitions``), so a partition never has two workers and never
blocks the others; its next records are fetched meanwhile and wait. A worker applies its
records in one transaction, falling back to partition by partition and event by event, with
retries and dead letters (``apply``, ``retry``). Offsets are committed only after the
transaction that applied their events committed (or after the events were parked).

``stop`` stops fetching, lets in-flight transactions finish (within a timeout), commits
their offsets and leaves the group. Anything not committed is delivered again to whoever
consumes next, and the inbox absorbs what was already applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from tpp_plumbing.messaging.apply import Applier
from tpp_plumbing.messaging.consumer import EventConsumer
from tpp_plumbing.messaging.deadletter import DeadLetterSink
from tpp_plumbing.messaging.partitions import Partitions, RebalanceListener
from tpp_plumbing.messaging.retry import RetryPolicy, error_name
from tpp_plumbing.observability.metrics import Metrics
from tpp_plumbing.settings import KafkaSettings

log = logging.getLogger(__name__)

#: Of the rebalance timeout, what committing offsets and rejoining may take.
REBALANCE_MARGIN_S = 5.0
#: How often the fetch loop looks for a worker done while records wait for its partition.
HELD_POLL_MS = 5


def split(
    fetched: dict[TopicPartition, list[Any]], parts: int
) -> list[dict[TopicPartition, list[Any]]]:
    """A fetch's partitions in up to ``parts`` groups of about as many records each.

    A batch consumer applies each group in its own transaction, so with ``parts`` > 1 one
    group's statement runs in PostgreSQL while the next is decoded: a busy topic uses both
    sides at once instead of taking turns. A partition is never split.
    """
    if parts <= 1 or len(fetched) <= 1:
        return [fetched]
    groups: list[dict[TopicPartition, list[Any]]] = [{} for _ in range(min(parts, len(fetched)))]
    sizes = [0] * len(groups)
    for tp, records in sorted(fetched.items(), key=lambda item: -len(item[1])):
        smallest = sizes.index(min(sizes))
        groups[smallest][tp] = records
        sizes[smallest] += len(records)
    return groups


class ConsumerRunner:
    """Consumes topics for one EventConsumer in a consumer group."""

    def __init__(
        self,
        consumer: EventConsumer,
        *,
        topics: Sequence[str],
        group_id: str,
        kafka: KafkaSettings,
        sink: DeadLetterSink,
        batch: bool = False,
        max_records: int = 500,
        concurrency: int = 4,
        retry: RetryPolicy | None = None,
        metrics: Metrics | None = None,
        request_timeout_ms: int = 30_000,
        fetch_timeout_ms: int = 200,
        fetch_max_wait_ms: int = 50,
        session_timeout_ms: int = 10_000,
        rebalance_timeout_ms: int = 30_000,
        group_instance_id: str | None = None,
    ) -> None:
        self.consumer = consumer
        self.topics = list(topics)
        self.group_id = group_id
        self._kafka_settings = kafka
        self._batch = batch
        self._max_records = max_records
        self._concurrency = concurrency
        self._request_timeout_ms = request_timeout_ms
        self._fetch_timeout_ms = fetch_timeout_ms
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._session_timeout_ms = session_timeout_ms
        self._rebalance_timeout_ms = rebalance_timeout_ms
        self._group_instance_id = group_instance_id
        self._partitions = Partitions(
            group_id=group_id, metrics=metrics, revoke_wait_s=self.revoke_wait_s
        )
        self._applier = Applier(
            consumer,
            group_id=group_id,
            partitions=self._partitions,
            sink=sink,
            retry=retry or RetryPolicy(),
            metrics=metrics,
            concurrency=concurrency,
        )
        self._loop_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def revoke_wait_s(self) -> float:
        """How long giving partitions up waits for their in-flight batches: within the
        rebalance timeout, with 5 s left to commit and rejoin (else the group drops us)."""
        return max(self._rebalance_timeout_ms / 1000 - REBALANCE_MARGIN_S, 1.0)

    @property
    def alive(self) -> bool:
        """The fetch loop runs."""
        return self._loop_task is not None and not self._loop_task.done()

    @property
    def lag(self) -> dict[TopicPartition, int]:
        """The lag per assigned partition, as last measured."""
        return self._partitions.lag

    @property
    def waiting(self) -> int:
        """How many fetched records wait for their partition's worker (read ahead)."""
        return self._partitions.waiting

    @property
    def parked(self) -> int:
        """How many messages this runner parked on dead-letter topics."""
        return self._applier.parked

    async def measure_lag(self) -> dict[TopicPartition, int]:
        """High-water mark minus committed offset, per assigned partition (also a gauge)."""
        return await self._partitions.measure_lag()

    async def start(self) -> None:
        """Join the group and start fetching."""
        kafka = AIOKafkaConsumer(
            **self._kafka_settings.client_options(),
            group_id=self.group_id,
            client_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=max(self.consumer.max_message_bytes * 2, 1_048_576),
            request_timeout_ms=self._request_timeout_ms,
            fetch_max_wait_ms=self._fetch_max_wait_ms,
            session_timeout_ms=self._session_timeout_ms,
            rebalance_timeout_ms=self._rebalance_timeout_ms,
            group_instance_id=self._group_instance_id,
        )
        await kafka.start()
        kafka.subscribe(topics=self.topics, listener=RebalanceListener(self._partitions))
        self._partitions.kafka = kafka
        self._partitions.stopping.clear()
        self._loop_task = asyncio.create_task(self._fetch_loop(), name=f"{self.group_id}-fetch")

    async def stop(self, grace_s: float = 20.0) -> None:
        """Stop fetching, finish in-flight work (within ``grace_s``), commit, leave the group."""
        partitions = self._partitions
        if partitions.kafka is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        partitions.stop()
        if self._loop_task is not None:
            # Stop intake now: a cancelled fetch leaves its records unreturned, uncommitted.
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._tasks:
            log.info(
                "stopping: waiting for in-flight events",
                extra={"group": self.group_id, "partitions": partitions.in_work},
            )
            _, late = await asyncio.wait(set(self._tasks), timeout=max(deadline - loop.time(), 0.1))
            for task in late:
                task.cancel()  # its transaction rolls back; the events come again later
            if late:
                await asyncio.wait(late, timeout=5)
                log.warning(
                    "stopping: in-flight events abandoned after the timeout",
                    extra={"group": self.group_id, "tasks": len(late)},
                )
        await partitions.commit()
        with contextlib.suppress(Exception):
            await partitions.kafka.stop()
        partitions.kafka = None
        log.info("consumer stopped", extra={"group": self.group_id})

    async def _fetch_loop(self) -> None:
        partitions = self._partitions
        assert partitions.kafka is not None
        kafka = partitions.kafka
        while not partitions.stopping.is_set():
            try:
                # Records read ahead for a partition whose worker is done go out first.
                fetched = partitions.ready()
                if not fetched:
                    await partitions.commit()
                    fetched = await self._fetch(kafka)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning(
                    "fetch failed; retrying",
                    extra={"group": self.group_id, "error_type": error_name(error)},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(partitions.stopping.wait(), 1.0)
                continue
            fetched = {tp: records for tp, records in fetched.items() if records}
            if not fetched:
                continue
            if partitions.stopping.is_set():
                break  # not started: these records stay uncommitted and come again
            partitions.claim(fetched)
            if self._batch:
                for part in split(fetched, self._concurrency):
                    self._spawn(self._applier.apply_fetch(part))
            else:
                for tp, records in fetched.items():
                    self._spawn(self._applier.apply_partition(tp, records, one_by_one=True))

    async def _fetch(self, kafka: AIOKafkaConsumer) -> dict[TopicPartition, list[Any]]:
        """The next fetched records of free partitions; a busy partition's are held. While
        records are held, the fetch waits only briefly: they go out soon after their worker
        is done."""
        partitions = self._partitions
        timeout_ms = self._fetch_timeout_ms
        if partitions.waiting:
            timeout_ms = min(timeout_ms, HELD_POLL_MS)
        fetched = await kafka.getmany(timeout_ms=timeout_ms, max_records=self._max_records)
        return partitions.hold({tp: records for tp, records in fetched.items() if records})

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
