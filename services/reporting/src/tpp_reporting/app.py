"""The reporting application: projections consumer and report API."""

from __future__ import annotations

from fastapi import FastAPI
from tpp_plumbing.idempotency import IdempotencyMiddleware
from tpp_plumbing.problems import install_problem_handlers
from tpp_plumbing.runtime import Runtime

from tpp_reporting import tables
from tpp_reporting.config import Settings
from tpp_reporting.consumers import subscriptions
from tpp_reporting.http import router
from tpp_reporting.service import ReportingService

NAME = "reporting"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the reporting app (uvicorn: ``tpp_reporting.app:create_app --factory``)."""
    settings = settings or Settings()  # database_url from env
    runtime = Runtime(settings, name=NAME)
    runtime.subscribe(subscriptions(runtime.sessions, batch_size=settings.batch_size))
    app = FastAPI(
        title="Training Program Platform — reporting",
        summary="Projections of the registry and enrollment events for dashboards.",
        lifespan=runtime.lifespan(),
    )
    app.state.runtime = runtime
    app.state.service = ReportingService(runtime.sessions)
    install_problem_handlers(app)
    app.add_middleware(IdempotencyMiddleware, sessions=runtime.sessions, table=tables.idempotency)
    app.include_router(runtime.health_router())
    app.include_router(router)
    return app
