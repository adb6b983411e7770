"""A service's FastAPI app: the platform's error documents and middleware, in their one order.

Starlette runs the middleware added last first. From the outside in, a request meets:
tracing, HTTP metrics and the access log, the rate limits (``Runtime.instrument``), the input
limits (they refuse an oversized body before anyone reads it), the audit log (inside tracing,
so a record carries the request's trace id), then idempotency (which reads and replays
bodies), then the routes. Token checks are route dependencies (``install_auth``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from fastapi import APIRouter, FastAPI
from sqlalchemy import Table

from tpp_plumbing.observability import telemetry
from tpp_plumbing.runtime import Runtime
from tpp_plumbing.web.audit import AuditMiddleware
from tpp_plumbing.web.audit_api import audit_router
from tpp_plumbing.web.idempotency import IdempotencyMiddleware
from tpp_plumbing.web.limits import Limits, install_limits
from tpp_plumbing.web.openapi import install_openapi
from tpp_plumbing.web.problems import install_problem_handlers
from tpp_plumbing.web.routing import add_routes

Lifespan = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]


def build_app(
    runtime: Runtime,
    *,
    title: str,
    summary: str,
    limits: Limits,
    idempotency: Table,
    audit: Table,
    routers: Sequence[APIRouter],
    lifespan: Lifespan | None = None,
) -> FastAPI:
    """The app of the service ``runtime`` runs: its ``routers`` (the busiest first: a request
    is matched against them in order) and the audit log's, behind the platform's middleware.

    ``idempotency`` and ``audit`` are the service's tables of those names; ``lifespan``
    replaces ``runtime.lifespan()`` when the service has more to start or stop around it.
    """
    app = FastAPI(
        title=title,
        summary=summary,
        lifespan=lifespan or runtime.lifespan(),
        telemetry=telemetry.FASTAPI_TELEMETRY_OFF,
    )
    app.state.runtime = runtime
    install_problem_handlers(app)
    install_openapi(app)
    app.add_middleware(IdempotencyMiddleware, sessions=runtime.sessions, table=idempotency)
    # Inside the tracing middleware (added by instrument), so a record carries the trace id.
    app.add_middleware(AuditMiddleware, commands=runtime.commands, table=audit)
    install_limits(app, limits)  # outside the idempotency middleware, which reads bodies
    runtime.instrument(app)  # health, /metrics, HTTP metrics, rate limits and tracing
    add_routes(app, *routers, audit_router(runtime.engine, audit))
    return app
