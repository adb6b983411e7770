"""Applies fetched records through an EventConsumer: batch, then partition, then one by one.

A fetch (several partitions) is applied in one transaction; if that fails, each partition's
records are applied again on their own, and a partition that still fails is applied event
by event, so the bad event is isolated and the rest go on. A failing event is retried with
backoff while its partition waits (``RetryPolicy``); after ``max_attempts`` tries it is
parked on its dead-letter topic and its partition moves on. Poison (not JSON, not an
envelope, schema-invalid, oversized) is parked at once. Each partition's offset is queued for
commit only after its events were applied or parked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from aiokafka import TopicPartition

from tpp_plumbing.messaging.consumer import Applied, EventConsumer, Poison, Record
from tpp_plumbing.messaging.deadletter import DeadLetterSink
from tpp_plumbing.messaging.partitions import Partitions
from tpp_plumbing.messaging.retry import RetryPolicy, error_name, is_infrastructure_error
from tpp_plumbing.messaging.tracing import traced
from tpp_plumbing.observability.metrics import Metrics, sniff_event_type

log = logging.getLogger(__name__)


class _AbandonedError(Exception):
    """The runner stops or lost the partition: leave the rest uncommitted."""


class Applier:
    """Applies the records a runner fetched, at most ``concurrency`` transactions at a time."""

    def __init__(
        self,
        consumer: EventConsumer,
        *,
        group_id: str,
        partitions: Partitions,
        sink: DeadLetterSink,
        retry: RetryPolicy,
        metrics: Metrics | None,
        concurrency: int,
    ) -> None:
        self.consumer = consumer
        self.group_id = group_id
        self._partitions = partitions
        self._sink = sink
        self._retry = retry
        self._metrics = metrics
        self._semaphore = asyncio.Semaphore(concurrency)
        self.parked = 0

    async def apply_fetch(self, fetched: dict[TopicPartition, list[Record]]) -> None:
        """Apply a whole fetch in one transaction, else partition by partition."""
        partitions = self._partitions
        records = [r for tp in fetched for r in fetched[tp]]
        try:
            poisoned = await self._apply(records)
        except (asyncio.CancelledError, _AbandonedError) as stopped:
            for tp in fetched:
                partitions.finish(tp)
            if isinstance(stopped, asyncio.CancelledError):
                raise
            return
        except Exception as error:
            log.warning(
                "batch failed; applying its partitions separately",
                extra={
                    "group": self.group_id,
                    "events": len(records),
                    "error_type": error_name(error),
                },
            )
            await asyncio.gather(*(self.apply_partition(tp, recs) for tp, recs in fetched.items()))
            return
        try:
            await self._park_poison(poisoned, abort=list(fetched))
        except _AbandonedError:
            for tp in fetched:
                partitions.finish(tp)
            return
        for tp, recs in fetched.items():
            partitions.done(tp, recs[-1].offset + 1)
            partitions.finish(tp)

    async def apply_partition(
        self, tp: TopicPartition, records: list[Record], *, one_by_one: bool = False
    ) -> None:
        """Apply one partition's records: as one transaction, else event by event."""
        partitions = self._partitions
        try:
            if not one_by_one and len(records) > 1:
                try:
                    poisoned = await self._apply(records)
                except _AbandonedError:
                    raise
                except Exception as error:
                    log.warning(
                        "partition batch failed; applying its events one by one",
                        extra=self._where(records[0], error_type=error_name(error)),
                    )
                else:
                    await self._park_poison(poisoned, abort=[tp])
                    partitions.done(tp, records[-1].offset + 1)
                    return
            for record in records:
                if partitions.aborted(tp):
                    return
                await self._apply_one(tp, record)
                partitions.done(tp, record.offset + 1)
        except _AbandonedError:
            return
        finally:
            partitions.finish(tp)

    async def _apply_one(self, tp: TopicPartition, record: Record) -> None:
        attempts = failures = 0
        while True:
            if self._partitions.aborted(tp):
                raise _AbandonedError
            try:
                poisoned = await self._apply([record])
            except _AbandonedError:
                raise
            except Exception as error:
                failures += 1
                if not is_infrastructure_error(error):
                    attempts += 1
                if attempts >= self._retry.max_attempts:
                    log.error(
                        "event failed %d times; parking it",
                        attempts,
                        extra=self._where(record, error_type=error_name(error)),
                    )
                    await self._park(
                        record,
                        kind="failed",
                        error=f"handler failed: {error_name(error)}",
                        attempts=attempts,
                        abort=[tp],
                    )
                    return
                delay = self._retry.delay(failures)
                if self._metrics is not None:
                    self._metrics.retries.labels(self.group_id, record.topic).inc()
                log.warning(
                    "event failed; retrying in %.2fs",
                    delay,
                    extra=self._where(record, error_type=error_name(error), attempt=attempts),
                )
                await self._partitions.wait(delay, [tp])
                continue
            await self._park_poison(poisoned, abort=[tp])
            return

    async def _apply(self, records: list[Record]) -> list[Poison]:
        """Apply records in one transaction; returns the poison among them (not applied)."""
        limit = self.consumer.max_message_bytes
        oversized = [
            Poison(r, f"oversized: {len(r.value)} bytes > {limit}")
            for r in records
            if r.value is not None and len(r.value) > limit
        ]
        if oversized:
            records = [r for r in records if r.value is None or len(r.value) <= limit]
        if not records:
            return oversized
        async with self._semaphore:
            if self._partitions.stopping.is_set():
                raise _AbandonedError  # stopped while waiting for a turn: not started
            started = time.perf_counter()
            with traced(records, group_id=self.group_id, service=self.consumer.service):
                result = await self.consumer.apply(records)
            elapsed = time.perf_counter() - started
        poisoned = list(result.poisoned)
        if result.poison > len(poisoned):
            # A consumer that decodes on its own counted poison without naming it: find it.
            poisoned = self.consumer.find_poison(records)
        if self._metrics is not None:
            self._count(records, result, elapsed, {id(p.record) for p in poisoned})
        return oversized + poisoned

    def _count(
        self, records: list[Record], result: Applied, elapsed: float, poison: set[int]
    ) -> None:
        assert self._metrics is not None
        m, group = self._metrics, self.group_id
        m.transaction_duration.labels(group).observe(elapsed)
        # Counted per label set, not per record: a batch holds thousands of records.
        consumed = Counter(
            (record.topic, sniff_event_type(record.value))
            for record in records
            if id(record) not in poison
        )
        for (topic, event_type), n in consumed.items():
            m.events_consumed.labels(group, topic, event_type).inc(n)
        for outcome, n in (
            ("applied", result.applied),
            ("duplicate", result.duplicates),
            ("ignored", result.ignored),
        ):
            if n:
                m.event_outcomes.labels(group, outcome).inc(n)

    async def _park_poison(
        self, poisoned: Iterable[Poison], *, abort: list[TopicPartition]
    ) -> None:
        for item in poisoned:
            await self._park(item.record, kind="poison", error=item.reason, attempts=1, abort=abort)

    async def _park(
        self,
        record: Record,
        *,
        kind: str,
        error: str,
        attempts: int,
        abort: list[TopicPartition],
    ) -> None:
        """Send a record to its dead-letter topic, retrying until Kafka acknowledges it."""
        failures = 0
        while True:
            try:
                await self._sink.park(
                    record, group=self.group_id, kind=kind, error=error, attempts=attempts
                )
                break
            except Exception as failure:
                failures += 1
                log.warning(
                    "dead-letter publish failed; retrying",
                    extra=self._where(record, error_type=error_name(failure)),
                )
                if any(self._partitions.aborted(tp) for tp in abort):
                    raise _AbandonedError from None
                await self._partitions.wait(self._retry.delay(failures), abort)
        self.parked += 1
        if self._metrics is not None:
            self._metrics.dead_letters.labels(record.topic, kind).inc()
        log.warning(
            "message parked on the dead-letter topic",
            extra=self._where(record, kind=kind, reason=error, attempts=attempts),
        )

    def _where(self, record: Record, **more: Any) -> dict[str, Any]:
        return {
            "group": self.group_id,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            **more,
        }
