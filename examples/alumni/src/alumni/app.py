"""The alumni service: a FastStream subscriber of the platform's registry and enrollment
topics, and one HTTP query (``GET /alumni?by=country|field``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import FastAPI, Query, Response
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.message import StreamMessage
from faststream.security import SASLScram512
from faststream.specification.asyncapi import AsyncAPI
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from tpp_contracts import ENROLLMENTS, SESSIONS, Decoded, PoisonMessageError, decode

from alumni.config import Settings
from alumni.roster import Breakdown, Roster

log = logging.getLogger("alumni")


async def decode_batch(message: StreamMessage[Any]) -> list[Decoded]:
    """The contracts' decoder on each record of a batch. Unknown event types decode with
    ``event=None`` (the roster ignores them); a record that is not a valid event is logged
    by position and reason (never its content) and skipped: it can never be applied."""
    decoded = []
    for record in message.raw_message:
        try:
            decoded.append(decode(record.value))
        except PoisonMessageError as error:
            log.warning(
                "skipped %s[%d]@%d: %s", record.topic, record.partition, record.offset, error
            )
    return decoded


class Alumni:
    """The broker, its subscriber and the roster, for the life of the app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = CollectorRegistry()
        self.tracer_provider = TracerProvider()
        self.roster: Roster | None = None
        self.applied = 0
        self.broker = KafkaBroker(
            settings.kafka_bootstrap,
            client_id="alumni",
            security=(
                SASLScram512(
                    settings.kafka_username,
                    settings.kafka_password.get_secret_value(),
                    use_ssl=settings.kafka_security_protocol == "SASL_SSL",
                )
                if settings.kafka_security_protocol != "PLAINTEXT"
                else None
            ),
            middlewares=[
                KafkaTelemetryMiddleware(tracer_provider=self.tracer_provider),
                KafkaPrometheusMiddleware(registry=self.metrics, app_name="alumni"),
            ],
        )
        topics = [settings.topic_prefix + t.name for t in (SESSIONS, ENROLLMENTS)]
        # One batch subscriber: a batch is one database transaction, then one offset commit.
        subscriber = self.broker.subscriber(
            *topics,
            group_id=settings.group_id,
            batch=True,
            max_records=settings.max_records,
            auto_offset_reset="earliest" if settings.from_beginning else "latest",
            ack_policy=AckPolicy.MANUAL,
            decoder=decode_batch,
            title="alumni:events",
            description="Sessions (their field) and completions (country), deduped by event id.",
        )
        subscriber(self.on_events)

    async def on_events(self, events: list[Decoded], message: KafkaMessage) -> None:
        """Apply a batch in one transaction, then commit its offsets; on failure, rewind so
        that the batch comes again (what was applied is then skipped by its event id)."""
        if self.roster is None:
            raise RuntimeError("the roster is not open")
        try:
            self.applied += await self.roster.apply(events)
        except BaseException:
            await message.nack()
            raise
        await message.ack()

    def asyncapi(self) -> dict[str, Any]:
        """FastStream's AsyncAPI document of what this service consumes."""
        spec = AsyncAPI(self.broker, title="Alumni roster", version="0.1.0")
        document: dict[str, Any] = spec.to_specification().to_jsonable()
        return document


def create_app(settings: Settings | None = None) -> FastAPI:
    """The alumni HTTP app; its lifespan opens the roster and runs the subscriber."""
    alumni = Alumni(settings or Settings())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(alumni.settings.database_url, min_size=1, max_size=4)
        try:
            alumni.roster = Roster(pool)
            await alumni.roster.create()
            await alumni.broker.start()
            try:
                yield
            finally:
                await alumni.broker.stop()
        finally:
            await pool.close()

    app = FastAPI(title="Alumni roster", lifespan=lifespan)
    app.state.alumni = alumni

    @app.get("/alumni")
    async def completions(by: Annotated[Breakdown, Query()] = "country") -> dict[str, Any]:
        """How many trainees completed a session, by country or by technical field."""
        if alumni.roster is None:
            raise RuntimeError("the roster is not open")
        return {"by": by, "completions": await alumni.roster.completions(by)}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(alumni.metrics), media_type=CONTENT_TYPE_LATEST)

    @app.get("/asyncapi.json", include_in_schema=False)
    async def asyncapi() -> dict[str, Any]:
        return alumni.asyncapi()

    return app
