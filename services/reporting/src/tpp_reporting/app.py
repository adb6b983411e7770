"""The reporting application: projections consumer, report API, dashboard and review pages."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from tpp_plumbing.db.uow import UnitsOfWork
from tpp_plumbing.runtime import Runtime
from tpp_plumbing.web.app import build_app
from tpp_plumbing.web.limits import Limits

from tpp_reporting import regions
from tpp_reporting.api.pages import STATIC
from tpp_reporting.api.pages import router as pages
from tpp_reporting.api.reports import commitments, router
from tpp_reporting.config import Settings, tune_gc
from tpp_reporting.consumers import subscriptions, topics
from tpp_reporting.freshness import LagMonitor, Positions
from tpp_reporting.messaging import MESSAGING
from tpp_reporting.service import ReportingService
from tpp_reporting.store import reports as report_store
from tpp_reporting.store import tables
from tpp_reporting.store.connection import raw_connection

#: The migrations this version ships (services/<name>/alembic).
MIGRATIONS = Path(__file__).resolve().parents[2] / "alembic"
NAME = "reporting"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the reporting app (uvicorn: ``tpp_reporting.app:create_app --factory``)."""
    settings = settings or Settings()  # database_url from env
    tune_gc(settings.gc_gen0_threshold)
    regions.preload()
    gc.freeze()  # what is loaded by now lives as long as the process: never scan it again
    runtime = Runtime(settings, name=NAME, migrations=MIGRATIONS, messaging=MESSAGING)
    runtime.subscribe(
        subscriptions(
            runtime.sessions,
            runtime.commands,
            batch_size=settings.batch_size,
            max_message_bytes=settings.consumer_max_message_bytes,
        )
    )

    async def positions() -> Positions:
        async with runtime.sessions() as session:
            return await report_store.positions(await raw_connection(session))

    lag = LagMonitor(
        kafka=settings.kafka,
        topics=[settings.kafka.topic(t) for t in topics()],
        positions=positions,
        interval_s=settings.lag_interval_s,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime.lifespan()(app):
            try:
                yield
            finally:
                await lag.close()

    app = build_app(
        runtime,
        title="Training Program Platform — reporting",
        summary="Projections of the registry and enrollment events: reports, exports,"
        " the dashboard and the annual review.",
        limits=Limits(settings.max_body_bytes, settings.max_page_size),
        idempotency=tables.idempotency,
        audit=tables.audit,
        routers=[router, commitments, pages],
        lifespan=lifespan,
    )
    app.state.lag = lag
    # Reporting publishes nothing: its units of work have no outbox and emit nothing.
    units = UnitsOfWork(runtime.sessions, outbox=None)
    app.state.service = ReportingService(units, reads=runtime.reads, lag=lag)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app
