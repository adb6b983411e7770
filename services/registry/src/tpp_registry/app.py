"""The registry application: HTTP API, outbox relay."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from tpp_plumbing.messaging.outbox import Outbox
from tpp_plumbing.observability import telemetry
from tpp_plumbing.runtime import Runtime
from tpp_plumbing.web.audit import AuditMiddleware, audit_router
from tpp_plumbing.web.idempotency import IdempotencyMiddleware
from tpp_plumbing.web.limits import Limits, install_limits
from tpp_plumbing.web.openapi import install_openapi
from tpp_plumbing.web.problems import install_problem_handlers
from tpp_plumbing.web.routing import add_routes

from tpp_registry.api import organizers, plans, sessions
from tpp_registry.config import Settings
from tpp_registry.messaging import MESSAGING
from tpp_registry.service import Services
from tpp_registry.store import tables

#: The migrations this version ships (services/<name>/alembic).
MIGRATIONS = Path(__file__).resolve().parents[2] / "alembic"
NAME = "registry"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the registry app (uvicorn: ``tpp_registry.app:create_app --factory``)."""
    settings = settings or Settings()  # database_url from env
    runtime = Runtime(settings, name=NAME, migrations=MIGRATIONS, messaging=MESSAGING)
    app = FastAPI(
        title="Training Program Platform — registry",
        summary="Organizers, annual plans, training sessions and the public catalogue.",
        lifespan=runtime.lifespan(),
        telemetry=telemetry.FASTAPI_TELEMETRY_OFF,
    )
    app.state.runtime = runtime
    app.state.services = Services.build(
        runtime.sessions,
        Outbox(tables.outbox, source=f"/{NAME}"),
        settings.home_country,
        runtime.reads,
        runtime.commands,
    )
    install_problem_handlers(app)
    install_openapi(app)
    app.add_middleware(IdempotencyMiddleware, sessions=runtime.sessions, table=tables.idempotency)
    # Inside the tracing middleware (added next), so a record carries the request's trace id.
    app.add_middleware(AuditMiddleware, commands=runtime.commands, table=tables.audit)
    limits = Limits(
        max_body_bytes=settings.max_body_bytes,
        max_page_size=settings.max_page_size,
        csv_max_bytes=settings.csv_max_bytes,
        csv_max_rows=settings.csv_max_rows,
        upload_paths=frozenset({"/sessions/import"}),
    )
    install_limits(app, limits)  # outside the idempotency middleware, which reads bodies
    runtime.instrument(app)  # health, /metrics, HTTP metrics and tracing
    add_routes(
        app,
        sessions.router,  # the busiest first: a request is matched against them in order
        organizers.router,
        plans.router,
        audit_router(runtime.engine, tables.audit),
    )
    return app
