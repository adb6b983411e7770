"""A service's runtime: database, consumers, outbox relay, telemetry, health, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tpp_plumbing.db.engine import asyncpg_dsn, create_engine, session_factory
from tpp_plumbing.db.reads import ReadPool
from tpp_plumbing.db.schema import check_schema
from tpp_plumbing.db.writes import CommandPool
from tpp_plumbing.health import Health
from tpp_plumbing.messaging.consumer import EventConsumer
from tpp_plumbing.messaging.deadletter import DeadLetterSink
from tpp_plumbing.messaging.declaration import Declaration
from tpp_plumbing.messaging.outbox import TABLE_NAME as OUTBOX_TABLE
from tpp_plumbing.messaging.relay_runner import RelayRunner, RelayTask, RelayThread
from tpp_plumbing.messaging.retry import RetryPolicy, error_name
from tpp_plumbing.messaging.runner import ConsumerRunner
from tpp_plumbing.observability import logs, telemetry
from tpp_plumbing.observability.http_tracing import instrument_app
from tpp_plumbing.observability.metrics import HttpMetricsMiddleware, Metrics
from tpp_plumbing.observability.sql_tracing import instrument_engine
from tpp_plumbing.relay_process import RelayProcess
from tpp_plumbing.settings import KafkaSettings, RelayMode, ServiceSettings
from tpp_plumbing.web.auth import install_auth
from tpp_plumbing.web.ratelimit import RateLimitMiddleware
from tpp_plumbing.web.routing import add_routes
from tpp_plumbing.workers import RELAY_PROCESS_ENV, WORKER_ENV

log = logging.getLogger(__name__)


def faststream_security(kafka: KafkaSettings) -> BaseSecurity | None:
    """The same security as the aiokafka clients, for FastStream (and its AsyncAPI document)."""
    if kafka.security_protocol == "PLAINTEXT":
        return None
    context = kafka.ssl_context()
    if not kafka.uses_sasl:
        return BaseSecurity(ssl_context=context, use_ssl=True)
    user = kafka.username or ""
    password = kafka.password.get_secret_value() if kafka.password else ""
    kind = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
    return kind[kafka.sasl_mechanism](user, password, ssl_context=context, use_ssl=kafka.uses_tls)


@dataclass(frozen=True, slots=True)
class Subscription:
    """A consumer and the (unprefixed) topics it reads."""

    consumer: EventConsumer
    topics: Sequence[str]
    batch: bool = False
    max_records: int = 500


class Runtime(RelayProcess, Health):
    """Owns a service's connections and background tasks for the life of its app.

    Its relay process (``tpp_plumbing.relay_process``) and health endpoints
    (``tpp_plumbing.health``) are its bases."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        name: str,
        migrations: Path | None = None,
        messaging: Declaration | None = None,
    ) -> None:
        self.settings = settings
        self.name = name
        #: The service's Alembic folder: start refuses a database behind its head.
        self.migrations = migrations
        #: What the service publishes and consumes (default: nothing, group named ``name``).
        self.messaging = messaging or Declaration(name)
        self.metrics = Metrics(name)
        telemetry.configure_tracing(name, settings.trace_sample_ratio)
        self.engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
        instrument_engine(self.engine)
        #: Raw connections for hot one-statement reads (lists, catalogue) and LISTEN.
        self.reads = ReadPool(
            asyncpg_dsn(settings.database_url), max_size=settings.database_pool_size
        )
        #: Where this process's relay runs: ``relay_mode``, except that "process" needs
        #: ``tpp_plumbing.serve`` to run the relay process (it marks its children with
        #: ``RELAY_PROCESS_ENV``); an app served otherwise (in-process, plain uvicorn, or by a
        #: supervisor that found no settings of the service) relays on its loop.
        self.relay_mode: RelayMode = (
            "loop"
            if settings.relay_mode == "process" and RELAY_PROCESS_ENV not in os.environ
            else settings.relay_mode
        )
        #: This process's relay; in relay mode "process" a notifier only (``serve_relay``
        #: runs the one that leads, in a process of its own).
        self.relay = self._new_relay(leads=self.relay_mode != "process")
        # A commit that wrote outbox rows wakes the relay (or, standing by, NOTIFYs the leader).
        self.sessions: async_sessionmaker[AsyncSession] = session_factory(
            self.engine, after_outbox_commit=self.relay.committed
        )
        #: Raw connections for the hottest commands (``tpp_plumbing.db.writes``).
        self.commands = CommandPool(
            asyncpg_dsn(settings.database_url),
            max_size=settings.database_pool_size,
            after_outbox_commit=self.relay.committed,
            database=self.engine.url.database or "",
        )
        self.dead_letters = DeadLetterSink(settings.kafka)
        self.runners: list[ConsumerRunner] = []
        self._relay_runner: RelayRunner | None = None
        self._monitor_task: asyncio.Task[None] | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._has_outbox: bool | None = None
        self._started = False

    def subscribe(self, subscriptions: Sequence[Subscription]) -> None:
        """Register the service's consumers (group id = topic prefix + declared group)."""
        s = self.settings
        group = s.kafka.topic(self.messaging.group)
        retry = RetryPolicy(s.consumer_max_attempts, s.consumer_backoff_s, s.consumer_backoff_max_s)
        worker = os.environ.get(WORKER_ENV, "0")
        for n, sub in enumerate(subscriptions, start=len(self.runners)):
            topics = [s.kafka.topic(t) for t in sub.topics]
            instance = f"{s.consumer_instance_id}-{worker}-{n}" if s.consumer_instance_id else None
            sub.consumer.bind(
                group=group,
                service=self.name,
                metrics=self.metrics,
                max_message_bytes=s.consumer_max_message_bytes,
            )
            self.runners.append(
                ConsumerRunner(
                    sub.consumer,
                    topics=topics,
                    group_id=group,
                    kafka=s.kafka,
                    sink=self.dead_letters,
                    batch=sub.batch,
                    max_records=sub.max_records,
                    concurrency=(
                        s.consumer_batch_concurrency if sub.batch else s.consumer_concurrency
                    ),
                    retry=retry,
                    metrics=self.metrics,
                    request_timeout_ms=s.kafka.request_timeout_ms,
                    fetch_max_wait_ms=s.consumer_fetch_max_wait_ms,
                    session_timeout_ms=s.consumer_session_timeout_ms,
                    rebalance_timeout_ms=s.consumer_rebalance_timeout_ms,
                    group_instance_id=instance,
                )
            )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Check the schema, then start the relay, the consumers and the monitor as the
        settings say."""
        if self.migrations is not None:
            await check_schema(self.engine, self.migrations, self.name)
        if self.settings.relay_enabled:
            where = RelayThread if self.relay_mode == "thread" else RelayTask
            self._relay_runner = where(self.relay, name=f"{self.name}-relay")
            self._relay_runner.start()
        if self.settings.consumers_enabled:
            for runner in self.runners:
                await runner.start()
        self._monitor_task = asyncio.create_task(self._monitor(), name=f"{self.name}-monitor")
        self._started = True

    async def stop(self) -> None:
        """Graceful stop within ``shutdown_timeout_s``.

        Consumers stop fetching, finish their in-flight transactions and commit their
        offsets; then the relay publishes the rows still waiting; then connections close.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_timeout_s
        if self._started:
            log.info("shutting down", extra={"service": self.name})
        await asyncio.gather(*(r.stop(grace_s=deadline - loop.time()) for r in self.runners))
        if self._relay_runner is not None:
            await self._relay_runner.stop(
                grace_s=max(deadline - loop.time() - 1.0, 0.0),
                timeout_s=max(deadline - loop.time(), 1),
            )
            self._relay_runner = None
        if self._monitor_task is not None:
            self._monitor_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor_task
            self._monitor_task = None
        # Closing clients is bounded too: a broker or database that stopped answering must not
        # hold the process past its deadline (SIGTERM is followed by SIGKILL).
        await _within(self.dead_letters.close(), deadline, "dead-letter producer")
        if self._admin is not None:
            await _within(self._admin.close(), deadline, "Kafka admin client")
            self._admin = None
        await _within(self.reads.close(), deadline, "read pool")
        await _within(self.commands.close(), deadline, "command pool")
        await _within(self.engine.dispose(), deadline, "database engine")
        if self._started:
            log.info("stopped", extra={"service": self.name})
        self._started = False

    def lifespan(self) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
        """A FastAPI lifespan that configures logging, starts and stops this runtime."""

        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            if self.settings.log_json:
                logs.configure_logging(self.name, self.settings.log_level)
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        return lifespan

    # ------------------------------------------------------------------ monitoring

    async def _monitor(self) -> None:
        while True:
            await self.measure()
            await asyncio.sleep(self.settings.monitor_interval_s)

    async def measure(self) -> None:
        """Measure consumer lag and the outbox backlog now (the monitor does it periodically)."""
        for runner in self.runners:
            try:
                await runner.measure_lag()
            except Exception as error:
                log.warning(
                    "consumer lag not measured",
                    extra={"group": runner.group_id, "error_type": error_name(error)},
                )
        try:
            await self._measure_outbox()
        except Exception as error:
            log.warning("outbox backlog not measured", extra={"error_type": error_name(error)})

    async def _measure_outbox(self) -> None:
        async with self.engine.connect() as conn:
            if self._has_outbox is None:
                found = await conn.scalar(text(f"SELECT to_regclass('{OUTBOX_TABLE}')"))
                self._has_outbox = found is not None
            if not self._has_outbox:
                return
            row = (
                await conn.execute(
                    text(
                        "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)"
                        f" FROM {OUTBOX_TABLE} WHERE published_at IS NULL"
                    )
                )
            ).one()
        self.metrics.outbox_backlog.set(row[0])
        self.metrics.outbox_oldest_age.set(float(row[1]))

    # ------------------------------------------------------------------ HTTP

    def instrument(self, app: FastAPI) -> None:
        """Add health, metrics and AsyncAPI endpoints, HTTP metrics, the access log, rate
        limits, tracing, token checks."""
        http = self.settings.http
        install_auth(app, self.settings.auth)
        add_routes(app, self.health_router())
        limits = getattr(app.state, "limits", None)
        app.add_middleware(
            RateLimitMiddleware,
            commands=http.rate_limit_commands,
            imports=http.rate_limit_imports,
            upload_paths=limits.upload_paths if limits is not None else (),
        )
        app.add_middleware(HttpMetricsMiddleware, metrics=self.metrics, access_log=http.access_log)
        instrument_app(app, self.name)


async def _within(closing: Awaitable[Any], deadline: float, what: str) -> None:
    """Await ``closing`` until the shutdown deadline (at least one second); log, never raise."""
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(closing, max(deadline - loop.time(), 1.0))
    except TimeoutError:
        log.warning("shutdown: %s not closed in time", what)
    except Exception:
        log.warning("shutdown: closing the %s failed", what, exc_info=True)
