"""A service's health endpoints: liveness, readiness, consumer lag, metrics, AsyncAPI.

``Health`` is ``Runtime``'s base (``tpp_plumbing.runtime``): the readiness checks of each
dependency (PostgreSQL, Kafka, the relay, the consumers) and the router that serves them,
kept apart from the runtime's start and stop.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tpp_plumbing.messaging import asyncapi
from tpp_plumbing.messaging.declaration import Declaration
from tpp_plumbing.messaging.relay import LOCK_HELD_SQL, OutboxRelay
from tpp_plumbing.messaging.relay_runner import RelayRunner
from tpp_plumbing.messaging.runner import ConsumerRunner
from tpp_plumbing.messaging.topics import TopicSettings
from tpp_plumbing.observability.metrics import Metrics
from tpp_plumbing.settings import RelayMode, ServiceSettings
from tpp_plumbing.web.problems import problem
from tpp_plumbing.web.routing import api_router


class Health:
    """What a service's health endpoints look at; ``Runtime`` sets these."""

    settings: ServiceSettings
    messaging: Declaration
    engine: AsyncEngine
    metrics: Metrics
    relay: OutboxRelay
    relay_mode: RelayMode
    runners: list[ConsumerRunner]
    _relay_runner: RelayRunner | None
    _admin: AIOKafkaAdminClient | None

    def asyncapi(self) -> dict[str, Any]:
        """The AsyncAPI 3.0 document of what this service sends and receives, on its cluster
        (``tpp_plumbing.messaging.asyncapi``: built from the contracts, as the relay and runners
        use them)."""
        return asyncapi.document(
            self.messaging, self.settings.kafka, environment="this cluster", layout=TopicSettings()
        )

    async def _kafka_check(self) -> str:
        try:
            if self._admin is None:
                admin = AIOKafkaAdminClient(
                    **self.settings.kafka.client_options(), request_timeout_ms=3000
                )
                await asyncio.wait_for(admin.start(), 3)
                self._admin = admin
            await asyncio.wait_for(self._admin.describe_cluster(), 3)
        except Exception as error:
            if self._admin is not None:
                with contextlib.suppress(Exception):
                    await self._admin.close()
                self._admin = None
            return f"failed: {type(error).__name__}"
        return "ok"

    async def readiness(self) -> dict[str, str]:
        """Each dependency's state: ``ok`` or ``failed: <why>``."""
        s = self.settings
        checks: dict[str, str] = {}
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            checks["postgresql"] = "ok"
        except Exception as error:
            checks["postgresql"] = f"failed: {type(error).__name__}"
        checks["kafka"] = await self._kafka_check()
        if s.relay_enabled:
            checks["relay"] = await self._relay_check()
        if s.consumers_enabled and self.runners:
            dead = [r.group_id for r in self.runners if not r.alive]
            checks["consumers"] = "failed: not running" if dead else "ok"
        return checks

    async def _relay_check(self) -> str:
        """The relay's readiness. In loop and thread modes: this process's relay runs and
        made a round (or tried for the lock) lately. In process mode the HTTP workers do not
        publish: their commits reach Kafka through whichever relay holds the lock in this
        database (this replica's relay process, or another replica's), woken by their
        notifier. So: the notifier runs and beats, and some session holds the lock. A held
        lock is an honest sign of a working leader: its session ends, freeing the lock, when
        the leader dies or is silent for ``relay_lease_s`` (paused, cut off), so readiness
        lags a stuck leader by at most that long; a leader that cannot reach Kafka keeps it,
        but then no relay could publish and the backlog metrics say so."""
        s = self.settings
        runner = self._relay_runner
        if runner is None or not runner.alive():
            return "failed: not running"
        if not self.relay.alive(max(5.0, 5 * s.relay_poll_interval_s)):
            return "failed: not running"
        if self.relay_mode != "process":
            return "ok"
        try:
            async with self.engine.connect() as conn:
                held = await conn.scalar(text(LOCK_HELD_SQL))
        except Exception as error:
            return f"failed: {type(error).__name__}"
        return "ok" if held else "failed: no relay holds the lock"

    def lag(self) -> dict[str, Any]:
        """Consumer lag as last measured, per group and partition: ``behind`` while a
        partition lags by more than ``lag_behind_threshold`` (readiness does not look)."""
        groups: dict[str, dict[str, int]] = {}
        for runner in self.runners:
            partitions = groups.setdefault(runner.group_id, {})
            for tp, n in runner.lag.items():
                partitions[f"{tp.topic}:{tp.partition}"] = n
        worst = max((n for p in groups.values() for n in p.values()), default=0)
        threshold = self.settings.lag_behind_threshold
        return {
            "status": "ok" if worst <= threshold else "behind",
            "max_partition_lag": worst,
            "threshold": threshold,
            "groups": groups,
        }

    def health_router(self) -> APIRouter:
        """Liveness, readiness, Prometheus metrics and the AsyncAPI document."""
        router = api_router(tags=["health"])

        @router.get("/asyncapi.json", tags=["docs"], summary="AsyncAPI document of the events")
        async def asyncapi() -> dict[str, Any]:
            return self.asyncapi()

        @router.get("/health/live", summary="The process is up")
        async def live() -> dict[str, str]:
            return {"status": "ok"}

        @router.get(
            "/health/ready",
            summary="This replica can serve: PostgreSQL and Kafka answer, the relay and"
            " consumers run (lag is not looked at: see /health/lag)",
        )
        async def ready() -> object:
            checks = await self.readiness()
            if all(v == "ok" for v in checks.values()):
                return {"status": "ok", "checks": checks}
            return problem(503, "Not ready", "a dependency is not ready", checks=checks)

        @router.get(
            "/health/lag",
            summary="Consumer lag per group and partition (measured every monitor_interval_s);"
            " status `behind` over lag_behind_threshold. Always 200: a lagging replica serves.",
        )
        async def lag() -> dict[str, Any]:
            return self.lag()

        @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
        async def metrics() -> Response:
            # Reads every worker's files in multiprocess mode: off the event loop.
            body = await asyncio.to_thread(self.metrics.exposition)
            return Response(body, media_type=CONTENT_TYPE_LATEST)

        return router
