"""The reporting application: projections consumer, report API, dashboard and review pages."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from tpp_plumbing.observability import telemetry
from tpp_plumbing.runtime import Runtime
from tpp_plumbing.web.audit import AuditMiddleware, audit_router
from tpp_plumbing.web.idempotency import IdempotencyMiddleware
from tpp_plumbing.web.limits import Limits, install_limits
from tpp_plumbing.web.openapi import install_openapi
from tpp_plumbing.web.problems import install_problem_handlers
from tpp_plumbing.web.routing import add_routes

from tpp_reporting import queries, regions, tables
from tpp_reporting.config import Settings
from tpp_reporting.consumers import raw_connection, subscriptions, topics
from tpp_reporting.freshness import LagMonitor, Positions
from tpp_reporting.http import commitments, router
from tpp_reporting.messaging import MESSAGING
from tpp_reporting.pages import STATIC
from tpp_reporting.pages import router as pages
from tpp_reporting.service import ReportingService

#: The migrations this version ships (services/<name>/alembic).
MIGRATIONS = Path(__file__).resolve().parents[2] / "alembic"
NAME = "reporting"


def tune_gc(gen0: int) -> None:
    """Collect the young generation less often (see ``Settings.gc_gen0_threshold``)."""
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, 700), gen1, gen2)


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
            batch_size=settings.batch_size,
            max_message_bytes=settings.consumer_max_message_bytes,
        )
    )

    async def positions() -> Positions:
        async with runtime.sessions() as session:
            return await queries.positions(await raw_connection(session))

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

    app = FastAPI(
        title="Training Program Platform — reporting",
        summary="Projections of the registry and enrollment events: reports, exports,"
        " the dashboard and the annual review.",
        lifespan=lifespan,
        telemetry=telemetry.FASTAPI_TELEMETRY_OFF,
    )
    app.state.runtime = runtime
    app.state.lag = lag
    app.state.service = ReportingService(runtime.sessions, reads=runtime.reads, lag=lag)
    install_problem_handlers(app)
    install_openapi(app)
    app.add_middleware(IdempotencyMiddleware, sessions=runtime.sessions, table=tables.idempotency)
    # Inside the tracing middleware (added next), so a record carries the request's trace id.
    app.add_middleware(AuditMiddleware, commands=runtime.commands, table=tables.audit)
    # Outside the idempotency middleware, which reads bodies.
    install_limits(app, Limits(settings.max_body_bytes, settings.max_page_size))
    runtime.instrument(app)  # health, /metrics, HTTP metrics and tracing
    add_routes(app, router, commitments, pages, audit_router(runtime.engine, tables.audit))
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app
