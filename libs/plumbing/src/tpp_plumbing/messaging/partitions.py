"""A consumer runner's partitions: which are in work, what to commit, rebalances, lag.

A fetched partition is *busy* (``claim``) until its worker is done (``finish``), so it never
has two workers and never blocks the others. Records of a busy partition fetched meanwhile
are held (``hold``), and the partition paused until they are handed out (``ready``) when its
worker is done: the next batch of a partition is read while the previous one is applied, and
at most one batch per partition waits. An offset is queued (``done``) only after the
transaction that applied its event committed, and committed (``commit``) before each fetch,
when partitions are given up, and on stop. Giving partitions up (``revoke``) interrupts the
backoffs of their workers and waits for them, within the rebalance timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from tpp_plumbing.messaging.retry import error_name
from tpp_plumbing.observability.metrics import Metrics

log = logging.getLogger(__name__)


class Partitions:
    """The bookkeeping of one consumer group member's partitions."""

    def __init__(self, *, group_id: str, metrics: Metrics | None, revoke_wait_s: float) -> None:
        self.group_id = group_id
        self.revoke_wait_s = revoke_wait_s
        self.kafka: AIOKafkaConsumer | None = None
        self.stopping = asyncio.Event()
        self.lag: dict[TopicPartition, int] = {}
        self._metrics = metrics
        self._busy: dict[TopicPartition, asyncio.Event] = {}
        self._held: dict[TopicPartition, list[Any]] = {}
        self._revoked: set[TopicPartition] = set()
        self._pending: dict[TopicPartition, int] = {}
        # Set (and replaced) when partitions are revoked or the runner stops: wakes backoffs.
        self._interrupt = asyncio.Event()

    @property
    def in_work(self) -> int:
        """How many partitions a worker holds."""
        return len(self._busy)

    def stop(self) -> None:
        """Stop: every worker gives up at its next step, backoffs end now."""
        self.stopping.set()
        self._interrupt_waits()

    @property
    def waiting(self) -> int:
        """How many fetched records wait for their partition's worker to finish."""
        return sum(map(len, self._held.values()))

    def claim(self, tps: Iterable[TopicPartition]) -> None:
        """Mark fetched partitions busy until their worker finishes."""
        for tp in tps:
            self._busy[tp] = asyncio.Event()

    def hold(self, fetched: dict[TopicPartition, list[Any]]) -> dict[TopicPartition, list[Any]]:
        """Keep the records of busy partitions until their workers finish (pausing those
        partitions meanwhile); return the others'."""
        assert self.kafka is not None
        free = {}
        for tp, records in fetched.items():
            if tp in self._busy:
                # Paused at its first held records, so none are fetched after them.
                self._held.setdefault(tp, []).extend(records)
                self.kafka.pause(tp)
            else:
                free[tp] = records
        return free

    def ready(self) -> dict[TopicPartition, list[Any]]:
        """The held records whose partitions' workers are done (those fetch again); none of
        a partition being given up (``revoke`` forgets them) or when stopping."""
        ready = {
            tp: records
            for tp, records in self._held.items()
            if tp not in self._busy and not self.aborted(tp)
        }
        kafka = self.kafka
        for tp in ready:
            del self._held[tp]
            if kafka is not None and tp in kafka.assignment():
                kafka.resume(tp)
        return ready

    def finish(self, tp: TopicPartition) -> None:
        """A worker is done with ``tp``: its held records, if any, may be handed out."""
        event = self._busy.pop(tp, None)
        if event is not None:
            event.set()

    def done(self, tp: TopicPartition, next_offset: int) -> None:
        """Events before ``next_offset`` are applied (or parked): commit it at the next chance."""
        self._pending[tp] = next_offset

    def aborted(self, tp: TopicPartition) -> bool:
        """The runner stops or lost ``tp``: its worker should leave the rest uncommitted."""
        return self.stopping.is_set() or tp in self._revoked

    async def wait(self, seconds: float, tps: Iterable[TopicPartition]) -> None:
        """Wait before a retry; stopping, or losing one of ``tps``, cuts the wait short."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0 and not any(map(self.aborted, tps)):
            interrupt = self._interrupt
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(interrupt.wait(), left)

    def _interrupt_waits(self) -> None:
        self._interrupt.set()
        self._interrupt = asyncio.Event()

    async def commit(self) -> None:
        """Commit the queued offsets of the partitions still assigned."""
        kafka = self.kafka
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

    async def revoke(self, revoked: Iterable[TopicPartition]) -> None:
        """Give partitions up: let their workers finish (within the wait), commit, forget."""
        tps = set(revoked)
        self._revoked |= tps
        self._interrupt_waits()
        waits = [self._busy[tp].wait() for tp in tps if tp in self._busy]
        if waits:
            await asyncio.wait(
                [asyncio.ensure_future(w) for w in waits], timeout=self.revoke_wait_s
            )
        await self.commit()
        for tp in tps:
            # Fetched under the old assignment: the next owner (us again, maybe) reads them
            # again from the committed offset.
            self._held.pop(tp, None)
            self._pending.pop(tp, None)
            self._drop_lag(tp)

    def assign(self, assigned: Iterable[TopicPartition]) -> None:
        """Take partitions (back): records of one still in work from before the rebalance
        are held until that worker is done."""
        self._revoked -= set(assigned)

    def _drop_lag(self, tp: TopicPartition) -> None:
        self.lag.pop(tp, None)
        if self._metrics is not None:
            self._metrics.drop_lag(self.group_id, tp.topic, tp.partition)

    async def measure_lag(self) -> dict[TopicPartition, int]:
        """High-water mark minus committed offset, per assigned partition (also a gauge)."""
        kafka = self.kafka
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


class RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """Hands the group's rebalances to the partitions' bookkeeping."""

    def __init__(self, partitions: Partitions) -> None:
        self._partitions = partitions

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._partitions.revoke(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self._partitions.assign(assigned)
