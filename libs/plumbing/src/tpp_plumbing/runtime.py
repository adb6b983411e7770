"""A service's runtime: database engine, Kafka broker, consumers, outbox relay, health."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Union

from fastapi import APIRouter, FastAPI
from faststream.kafka import KafkaBroker
from faststream.specification.asyncapi import AsyncAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tpp_contracts import TOPIC_EVENTS
from tpp_contracts.topics import ALL as ALL_TOPICS

from tpp_plumbing.consumer import EventConsumer
from tpp_plumbing.db import asyncpg_dsn, create_engine, session_factory
from tpp_plumbing.outbox import OutboxRelay
from tpp_plumbing.problems import problem
from tpp_plumbing.settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Subscription:
    """A consumer and the (unprefixed) topics it reads."""

    consumer: EventConsumer
    topics: Sequence[str]
    batch: bool = False
    max_records: int = 500


class Runtime:
    """Owns a service's connections and background tasks for the life of its app."""

    def __init__(self, settings: ServiceSettings, *, name: str) -> None:
        self.settings = settings
        self.name = name
        self.engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
        self.sessions: async_sessionmaker[AsyncSession] = session_factory(self.engine)
        self.broker = KafkaBroker(
            settings.kafka.bootstrap,
            client_id=name,
            request_timeout_ms=settings.kafka.request_timeout_ms,
            logger=logging.getLogger(f"tpp.{name}.kafka"),
        )
        self.relay = OutboxRelay(
            dsn=asyncpg_dsn(settings.database_url),
            bootstrap=settings.kafka.bootstrap,
            topic_prefix=settings.kafka.topic_prefix,
            batch_size=settings.relay_batch_size,
            poll_interval_s=settings.relay_poll_interval_s,
        )
        self._relay_task: asyncio.Task[None] | None = None
        self._consuming = False
        self._document_publications()

    def _document_publications(self) -> None:
        # The relay publishes with a bare producer; these publishers exist for the AsyncAPI
        # document only. A service owns the topics named after it (``registry.*``).
        for topic in ALL_TOPICS:
            if not topic.name.startswith(f"{self.name}."):
                continue
            models = TOPIC_EVENTS[topic.name]
            names = ", ".join(m.__name__ for m in models)
            self.broker.publisher(
                self.settings.kafka.topic(topic.name),
                title=f"{topic.name}:publish",
                description=(
                    f"CloudEvents 1.0 (structured, application/cloudevents+json), keyed by"
                    f" {topic.key}; `data` is one of: {names}. W3C trace context in headers."
                ),
                schema=Union[models],  # noqa: UP007 - a runtime union of a tuple of types
            )

    def asyncapi(self) -> dict[str, Any]:
        """The AsyncAPI 3.0 document of what this service publishes and consumes."""
        spec = AsyncAPI(
            self.broker,
            title=f"Training Program Platform — {self.name}",
            version="1.0.0",
            description=f"Kafka topics the {self.name} service publishes and consumes.",
        )
        document: dict[str, Any] = spec.to_specification().to_jsonable()
        return document

    def subscribe(self, subscriptions: Sequence[Subscription]) -> None:
        """Register the service's consumers (group id = topic prefix + service name)."""
        for sub in subscriptions:
            sub.consumer.subscribe(
                self.broker,
                [self.settings.kafka.topic(t) for t in sub.topics],
                group_id=self.settings.kafka.topic(self.name),
                batch=sub.batch,
                max_records=sub.max_records,
            )

    async def start(self) -> None:
        """Start the relay and the consumers as the settings say."""
        if self.settings.relay_enabled:
            self._relay_task = asyncio.create_task(self.relay.run(), name=f"{self.name}-relay")
        if self.settings.consumers_enabled and self.broker.subscribers:
            await self.broker.start()
            self._consuming = True

    async def stop(self) -> None:
        """Stop consumers first (their in-flight batches finish), then the relay, then the pool."""
        if self._consuming:
            await self.broker.stop()
            self._consuming = False
        if self._relay_task is not None:
            self._relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay_task
            self._relay_task = None
        await self.engine.dispose()

    def lifespan(self) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
        """A FastAPI lifespan that starts and stops this runtime."""

        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        return lifespan

    def health_router(self) -> APIRouter:
        """Liveness and readiness endpoints."""
        router = APIRouter(tags=["health"])

        @router.get("/asyncapi.json", tags=["docs"], summary="AsyncAPI document of the events")
        async def asyncapi() -> dict[str, Any]:
            return self.asyncapi()

        @router.get("/health/live", summary="The process is up")
        async def live() -> dict[str, str]:
            return {"status": "ok"}

        @router.get("/health/ready", summary="PostgreSQL answers and the relay runs")
        async def ready() -> object:
            checks: dict[str, str] = {}
            try:
                async with self.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                checks["postgresql"] = "ok"
            except Exception as error:
                checks["postgresql"] = f"failed: {type(error).__name__}"
            if self.settings.relay_enabled:
                alive = self._relay_task is not None and not self._relay_task.done()
                checks["relay"] = "ok" if alive else "failed: not running"
            if all(v == "ok" for v in checks.values()):
                return {"status": "ok", "checks": checks}
            return problem(503, "Not ready", "a dependency is not ready", checks=checks)

        return router
