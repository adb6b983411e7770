"""Runs an EventConsumer on Kafka: per-partition progress, retries, dead letters, lag, stop.

The runner owns an aiokafka consumer in the service's group (no auto-commit). Each fetch is
handed to a worker and its partitions are *paused* until the worker is done, so a partition
never has two workers and never blocks the others:

- batch consumers apply a whole fetch (several partitions) in one transaction; if it fails,
  each partition's records are applied again on their own, and a partition that still
  fails is applied event by event, so the bad event is isolated and the rest go on;
- a failing event is retried with exponential backoff (with jitter) while its partition
  stays paused: other partitions keep flowing, and there is no immediate re-seek loop;
  after ``max_attempts`` tries it is parked on ``<topic>.dlq`` and its partition moves on.
  Failures to reach PostgreSQL or Kafka are retried without counting: an outage delays
  events but never dead-letters them;
- poison messages (not JSON, not an envelope, schema-invalid, oversized) are parked at once;
- an offset is committed only after the transaction that applied its event committed (or
  after the event was parked).

``stop`` stops fetching, lets in-flight transactions finish (within a timeout), commits
their offsets and leaves the group. Anything not committed is delivered again to whoever
consumes next, and the inbox absorbs what was already applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, StatusCode

from tpp_plumbing.db.engine import is_database_outage
from tpp_plumbing.messaging.consumer import Applied, EventConsumer, Poison, Record
from tpp_plumbing.messaging.deadletter import DeadLetterSink
from tpp_plumbing.observability import telemetry
from tpp_plumbing.observability.metrics import Metrics, sniff_event_id, sniff_event_type
from tpp_plumbing.settings import KafkaSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a failing event is retried before it is parked."""

    max_attempts: int = 5
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure (exponential, ±20% jitter)."""
        base = min(self.backoff_max_s, self.backoff_s * 2.0 ** max(failures - 1, 0))
        jitter: float = random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not cryptography
        return base * jitter


class _AbandonedError(Exception):
    """The runner stops or lost the partition: leave the rest uncommitted."""


def is_infrastructure_error(error: BaseException) -> bool:
    """True for failures to reach PostgreSQL or Kafka (retried without counting)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, KafkaError):
            return True
        current = current.__cause__ or current.__context__
    return is_database_outage(error)


def error_name(error: BaseException) -> str:
    """An exception's qualified type name (its message may hold row values: left out)."""
    return f"{type(error).__module__}.{type(error).__qualname__}"


#: Of the rebalance timeout, what committing offsets and rejoining may take.
REBALANCE_MARGIN_S = 5.0


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
        self._sink = sink
        self._batch = batch
        self._max_records = max_records
        self._retry = retry or RetryPolicy()
        self._metrics = metrics
        self._request_timeout_ms = request_timeout_ms
        self._fetch_timeout_ms = fetch_timeout_ms
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._session_timeout_ms = session_timeout_ms
        self._rebalance_timeout_ms = rebalance_timeout_ms
        self._group_instance_id = group_instance_id
        self._semaphore = asyncio.Semaphore(concurrency)
        self._kafka: AIOKafkaConsumer | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy: dict[TopicPartition, asyncio.Event] = {}
        self._revoked: set[TopicPartition] = set()
        self._pending: dict[TopicPartition, int] = {}
        self._stopping = asyncio.Event()
        # Set (and replaced) when partitions are revoked or the runner stops: wakes backoffs.
        self._interrupt = asyncio.Event()
        self.lag: dict[TopicPartition, int] = {}
        self.parked = 0

    @property
    def revoke_wait_s(self) -> float:
        """How long giving partitions up waits for their in-flight batches: within the
        rebalance timeout, with 5 s left to commit and rejoin (else the group drops us)."""
        return max(self._rebalance_timeout_ms / 1000 - REBALANCE_MARGIN_S, 1.0)

    # ------------------------------------------------------------------ lifecycle

    @property
    def alive(self) -> bool:
        """The fetch loop runs."""
        return self._loop_task is not None and not self._loop_task.done()

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
        kafka.subscribe(topics=self.topics, listener=_Listener(self))
        self._kafka = kafka
        self._stopping.clear()
        self._loop_task = asyncio.create_task(self._fetch_loop(), name=f"{self.group_id}-fetch")

    async def stop(self, grace_s: float = 20.0) -> None:
        """Stop fetching, finish in-flight work (within ``grace_s``), commit, leave the group."""
        if self._kafka is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        self._stopping.set()
        self._interrupt_pauses()
        if self._loop_task is not None:
            # Stop intake now: a cancelled fetch leaves its records unreturned, uncommitted.
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._tasks:
            log.info(
                "stopping: waiting for in-flight events",
                extra={"group": self.group_id, "partitions": len(self._busy)},
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
        await self._commit_pending()
        with contextlib.suppress(Exception):
            await self._kafka.stop()
        self._kafka = None
        log.info("consumer stopped", extra={"group": self.group_id})

    # ------------------------------------------------------------------ fetching

    async def _fetch_loop(self) -> None:
        assert self._kafka is not None
        kafka = self._kafka
        while not self._stopping.is_set():
            try:
                await self._commit_pending()
                fetched = await kafka.getmany(
                    timeout_ms=self._fetch_timeout_ms, max_records=self._max_records
                )
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning(
                    "fetch failed; retrying",
                    extra={"group": self.group_id, "error_type": error_name(error)},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 1.0)
                continue
            fetched = {tp: records for tp, records in fetched.items() if records}
            if not fetched:
                continue
            if self._stopping.is_set():
                break  # not started: these records stay uncommitted and come again
            for tp in fetched:
                kafka.pause(tp)
                self._busy[tp] = asyncio.Event()
            if self._batch:
                self._spawn(self._apply_fetch(fetched))
            else:
                for tp, records in fetched.items():
                    self._spawn(self._apply_partition(tp, records, one_by_one=True))

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _finish(self, tp: TopicPartition) -> None:
        event = self._busy.pop(tp, None)
        if event is not None:
            event.set()
        kafka = self._kafka
        if kafka is not None and not self._stopping.is_set() and tp in kafka.assignment():
            kafka.resume(tp)

    async def _pause(self, seconds: float, tps: Iterable[TopicPartition]) -> None:
        """Wait before a retry; stopping, or losing one of ``tps``, cuts the wait short."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0 and not any(map(self._aborted, tps)):
            interrupt = self._interrupt
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(interrupt.wait(), left)

    def _interrupt_pauses(self) -> None:
        self._interrupt.set()
        self._interrupt = asyncio.Event()

    def _aborted(self, tp: TopicPartition) -> bool:
        return self._stopping.is_set() or tp in self._revoked

    async def _commit_pending(self) -> None:
        kafka = self._kafka
        if not self._pending or kafka is None:
            return
        assigned = kafka.assignment()
        offsets = {tp: off for tp, off in self._pending.items() if tp in assigned}
        self._pending = {tp: off for tp, off in self._pending.items() if tp not in offsets}
        if not offsets:
            return
        try:
            await kafka.commit(offsets)
        except Exception as error:
            # Lost in a rebalance: the next owner reads these events again; the inbox absorbs.
            log.warning(
                "offset commit failed",
                extra={"group": self.group_id, "error_type": error_name(error)},
            )

    # ------------------------------------------------------------------ applying

    async def _apply_fetch(self, fetched: dict[TopicPartition, list[Record]]) -> None:
        records = [r for tp in fetched for r in fetched[tp]]
        try:
            poisoned = await self._apply(records)
        except (asyncio.CancelledError, _AbandonedError) as stopped:
            for tp in fetched:
                self._finish(tp)
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
            await asyncio.gather(*(self._apply_partition(tp, recs) for tp, recs in fetched.items()))
            return
        try:
            await self._park_poison(poisoned, abort=list(fetched))
        except _AbandonedError:
            for tp in fetched:
                self._finish(tp)
            return
        for tp, recs in fetched.items():
            self._pending[tp] = recs[-1].offset + 1
            self._finish(tp)

    async def _apply_partition(
        self, tp: TopicPartition, records: list[Record], *, one_by_one: bool = False
    ) -> None:
        """Apply one partition's records: as one transaction, else event by event."""
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
                    self._pending[tp] = records[-1].offset + 1
                    return
            for record in records:
                if self._aborted(tp):
                    return
                await self._apply_one(tp, record)
                self._pending[tp] = record.offset + 1
        except _AbandonedError:
            return
        finally:
            self._finish(tp)

    async def _apply_one(self, tp: TopicPartition, record: Record) -> None:
        attempts = failures = 0
        while True:
            if self._aborted(tp):
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
                await self._pause(delay, [tp])
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
            if self._stopping.is_set():
                raise _AbandonedError  # stopped while waiting for a turn: not started
            started = time.perf_counter()
            with self._traced(records):
                result = await self.consumer.apply(records)
            elapsed = time.perf_counter() - started
        poisoned = list(result.poisoned)
        if result.poison > len(poisoned):
            # A consumer that decodes on its own counted poison without naming it: find it.
            poisoned = self.consumer.find_poison(records)
        if self._metrics is not None:
            self._count(records, result, elapsed, {id(p.record) for p in poisoned})
        return oversized + poisoned

    @contextlib.contextmanager
    def _traced(self, records: list[Record]) -> Iterator[None]:
        """Spans continuing each record's trace around the transaction that applies it.

        One record: a CONSUMER span ``<topic> process`` whose parent is the producer's span
        (``traceparent`` header); the transaction's SQL and any outbox rows it writes are its
        children, so the trace goes on. A batch (one transaction for many records): a CONSUMER
        span ``<group> process batch`` in a trace of its own, *linked* to every record's
        trace, holds the SQL; and every record gets a span ``<topic> process`` in *its own*
        trace (parent: its producer's span, linked to the batch span) covering the
        transaction that applied it. So each event's trace reaches its projection update.
        """
        tracer = telemetry.tracer()
        if len(records) > 1 and not telemetry.ExportingProcessor.live:
            # Nothing exports: no span would be read, and the batch's own trace is new anyway
            # (a single record's span stays: it hands its trace on to the outbox rows).
            yield
            return
        if len(records) == 1:
            [record] = records
            with tracer.start_as_current_span(
                f"{record.topic} process",
                context=telemetry.kafka_headers_context(record.headers),
                kind=trace.SpanKind.CONSUMER,
                attributes=self._span_attributes(record),
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    yield
                except Exception as error:
                    _failed(span, error)
                    raise
            return
        contexts = [telemetry.kafka_headers_context(r.headers) for r in records]
        with tracer.start_as_current_span(
            f"{self.group_id} process batch",
            context=Context(),
            kind=trace.SpanKind.CONSUMER,
            links=telemetry.links_to(contexts),
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.batch.message_count": len(records),
                "messaging.consumer.group.name": self.group_id,
                telemetry.SERVICE_ATTRIBUTE: self.consumer.service,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as batch:
            batch_context = batch.get_span_context()
            link = [trace.Link(batch_context)] if batch_context.is_valid else None
            spans = [
                tracer.start_span(
                    f"{record.topic} process",
                    context=ctx,
                    kind=trace.SpanKind.CONSUMER,
                    links=link,
                    attributes=self._span_attributes(record),
                )
                for record, ctx in zip(records, contexts, strict=True)
                if ctx is not None
            ]
            try:
                yield
            except Exception as error:
                for span in [batch, *spans]:
                    _failed(span, error)
                raise
            finally:
                for span in spans:
                    span.end()

    def _span_attributes(self, record: Record) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
            "messaging.consumer.group.name": self.group_id,
            "tpp.event.type": sniff_event_type(record.value),
            telemetry.SERVICE_ATTRIBUTE: self.consumer.service,
        }
        event_id = sniff_event_id(record.value)
        if event_id is not None:
            attributes["messaging.message.id"] = event_id
        return attributes

    def _count(
        self, records: list[Record], result: Applied, elapsed: float, poison: set[int]
    ) -> None:
        assert self._metrics is not None
        m, group = self._metrics, self.group_id
        m.transaction_duration.labels(group).observe(elapsed)
        for record in records:
            if id(record) not in poison:
                m.events_consumed.labels(group, record.topic, sniff_event_type(record.value)).inc()
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
                if any(self._aborted(tp) for tp in abort):
                    raise _AbandonedError from None
                await self._pause(self._retry.delay(failures), abort)
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

    # ------------------------------------------------------------------ rebalancing, lag

    async def _revoke(self, revoked: Iterable[TopicPartition]) -> None:
        tps = set(revoked)
        self._revoked |= tps
        self._interrupt_pauses()
        waits = [self._busy[tp].wait() for tp in tps if tp in self._busy]
        if waits:
            await asyncio.wait(
                [asyncio.ensure_future(w) for w in waits], timeout=self.revoke_wait_s
            )
        await self._commit_pending()
        for tp in tps:
            self._pending.pop(tp, None)
            self._drop_lag(tp)

    def _assign(self, assigned: Iterable[TopicPartition]) -> None:
        tps = set(assigned)
        self._revoked -= tps
        kafka = self._kafka
        if kafka is not None:
            for tp in tps & set(self._busy):
                kafka.pause(tp)  # still being applied from before the rebalance

    def _drop_lag(self, tp: TopicPartition) -> None:
        self.lag.pop(tp, None)
        if self._metrics is not None:
            self._metrics.drop_lag(self.group_id, tp.topic, tp.partition)

    async def measure_lag(self) -> dict[TopicPartition, int]:
        """High-water mark minus committed offset, per assigned partition (also a gauge)."""
        kafka = self._kafka
        if kafka is None:
            return {}
        tps = sorted(kafka.assignment())
        if not tps:
            for tp in list(self.lag):
                self._drop_lag(tp)
            return {}
        ends = await kafka.end_offsets(tps)
        starts: dict[TopicPartition, int] | None = None
        lag: dict[TopicPartition, int] = {}
        for tp in tps:
            committed = await kafka.committed(tp)
            if committed is None:
                starts = starts or await kafka.beginning_offsets(tps)
                committed = starts[tp]
            lag[tp] = max(ends[tp] - committed, 0)
        for tp in set(self.lag) - set(lag):
            self._drop_lag(tp)
        self.lag = lag
        if self._metrics is not None:
            for tp, value in lag.items():
                self._metrics.consumer_lag.labels(self.group_id, tp.topic, str(tp.partition)).set(
                    value
                )
        return lag


def _failed(span: Span, error: BaseException) -> None:
    span.set_status(StatusCode.ERROR)
    span.set_attribute("error.type", error_name(error))


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, runner: ConsumerRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._runner._revoke(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self._runner._assign(assigned)
