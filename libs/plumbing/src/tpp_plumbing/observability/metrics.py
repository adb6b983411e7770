"""Prometheus metrics of a service: HTTP, events, handlers, consumer lag, outbox, dead letters.

Each runtime has its own registry (several services may share a test process), served at
``/metrics``. Labels hold route templates, methods, status codes, topics, partitions,
consumer groups and event types only: never ids, paths with ids, or personal data.

A replica served by several workers (``tpp_plumbing.serve``) runs prometheus_client's
multiprocess mode: each worker writes its values to files in the replica's own
``PROMETHEUS_MULTIPROC_DIR`` (the supervisor makes it), and whichever worker a scrape reaches
answers with the sum over every worker, dead ones included, so no counter goes backwards
between two scrapes. The standard process metrics come per worker (``worker`` label).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tpp_contracts.envelope import EVENT_TYPES

from tpp_plumbing.workers import MULTIPROC_DIR, WORKER_PID

access = logging.getLogger("tpp.access")
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


_TYPE = re.compile(rb'"type"\s*:\s*"([a-z0-9._-]{1,120})"')
_ID = re.compile(rb'"id"\s*:\s*"([0-9a-fA-F-]{36})"')


def event_type_label(event_type: str | None) -> str:
    """A known event type, or ``other`` (label values must come from a closed set)."""
    return event_type if event_type in EVENT_TYPES else "other"


def sniff_event_type(value: bytes | None) -> str:
    """The CloudEvents type of a message value, cheaply (no full parse), as a label value.

    The envelope's ``type`` precedes its ``data`` in what the platform publishes; anything
    unrecognised is ``other``.
    """
    if not value:
        return "other"
    found = _TYPE.search(value, 0, 1024)
    return event_type_label(found.group(1).decode() if found else None)


def sniff_event_id(value: bytes | None) -> str | None:
    """The CloudEvents id of a message value, cheaply (for spans and logs), if it has one."""
    found = _ID.search(value, 0, 256) if value else None
    return found.group(1).decode() if found else None


class Metrics:
    """The metrics one service exposes."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        r = self.registry
        if not os.environ.get(MULTIPROC_DIR):  # else per worker, in exposition()
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
        self.http_duration = Histogram(
            "tpp_http_request_duration_seconds",
            "HTTP request latency by method, route template and status code.",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.events_published = Counter(
            "tpp_events_published",
            "Events the outbox relay published, by topic and event type.",
            ["topic", "type"],
            registry=r,
        )
        self.events_consumed = Counter(
            "tpp_events_consumed",
            "Events consumed (processed and committed), by group, topic and event type.",
            ["group", "topic", "type"],
            registry=r,
        )
        self.event_outcomes = Counter(
            "tpp_consumer_outcomes",
            "What consuming did with events, by group: applied, duplicate (inbox), ignored"
            " (a type the group does not project).",
            ["group", "outcome"],
            registry=r,
        )
        self.handler_duration = Histogram(
            "tpp_event_handler_duration_seconds",
            "Time an event handler took (inside its transaction), by group and event type.",
            ["group", "type"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.transaction_duration = Histogram(
            "tpp_consumer_transaction_duration_seconds",
            "Time to apply one batch (one transaction with its inbox rows), by group.",
            ["group"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "tpp_consumer_lag",
            "Events not yet consumed: high-water mark minus committed offset, per partition.",
            ["group", "topic", "partition"],
            registry=r,
            # A replica's workers share the group's partitions (during a rebalance two may
            # still report one partition).
            multiprocess_mode="livemax",
        )
        self.retries = Counter(
            "tpp_consumer_retries",
            "Retries of failed event handlers (with exponential backoff), by group and topic.",
            ["group", "topic"],
            registry=r,
        )
        self.dead_letters = Counter(
            "tpp_dead_letters",
            "Messages sent to a dead-letter topic, by original topic and kind (poison, failed).",
            ["topic", "kind"],
            registry=r,
        )
        # Every worker measures the same table: the latest measurement counts.
        self.outbox_backlog = Gauge(
            "tpp_outbox_backlog",
            "Outbox rows not yet published.",
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.outbox_oldest_age = Gauge(
            "tpp_outbox_oldest_unsent_age_seconds",
            "Age of the oldest unpublished outbox row (0 when none).",
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.relay_leader = Gauge(
            "tpp_outbox_relay_leader",
            "1 while a relay of this replica (one of its workers) holds the publishing lock.",
            registry=r,
            multiprocess_mode="livemax",
        )

    def drop_lag(self, group: str, topic: str, partition: int) -> None:
        """Forget a partition's lag (no longer assigned here)."""
        labels = (group, topic, str(partition))
        if os.environ.get(MULTIPROC_DIR):
            # A worker's file keeps every series it wrote: 0 is what this worker still owes.
            self.consumer_lag.labels(*labels).set(0)
            return
        with contextlib.suppress(KeyError):
            self.consumer_lag.remove(*labels)

    def exposition(self) -> bytes:
        """The Prometheus text of this service: of this process, or in multiprocess mode of
        every worker of the replica (counters summed, process metrics per worker)."""
        directory = os.environ.get(MULTIPROC_DIR)
        if not directory:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]  # untyped in prometheus_client
        registry.register(WorkerProcessCollector(Path(directory)))
        PlatformCollector(registry=registry)
        return generate_latest(registry)


class WorkerProcessCollector:
    """The standard process metrics (CPU, memory, file descriptors) of each live worker of
    the replica, labelled ``worker`` with its index: a restarted worker's counters restart,
    as any process's do, under the same label."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for path in sorted(self._directory.glob(WORKER_PID.format("*"))):
            index = path.name.removeprefix("worker-").removesuffix(".pid")
            try:
                pid = int(path.read_text())
            except (OSError, ValueError):
                continue
            if not Path(f"/proc/{pid}").exists():
                continue
            process = ProcessCollector(pid=functools.partial(int, pid), registry=None)
            for family in process.collect():
                merged = families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                for sample in family.samples:
                    labels = {**sample.labels, "worker": index}
                    merged.samples.append(sample._replace(labels=labels))
        yield from families.values()


class HttpMetricsMiddleware:
    """Records each HTTP request's latency and status under its route template, and (with
    ``access_log``) logs it on ``tpp.access``: method, route template, status, duration.

    The access log names the route, never the path or the query: a path holds whatever the
    client typed (``GET /trainees/<anything>``) and a query may hold personal data.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, *, access_log: bool = False) -> None:
        self.app = app
        self.histogram = metrics.http_duration
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            elapsed = time.perf_counter() - start
            method = scope.get("method", "")
            self.histogram.labels(method, template, str(status)).observe(elapsed)
            if self.access_log and access.isEnabledFor(logging.INFO):
                access.info(
                    "%s %s %d",
                    method,
                    template,
                    status,
                    extra={
                        "method": method,
                        "route": template,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
