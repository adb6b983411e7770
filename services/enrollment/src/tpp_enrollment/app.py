"""The enrollment application: HTTP API, session view consumer, outbox relay."""

from __future__ import annotations

from fastapi import FastAPI
from tpp_plumbing.idempotency import IdempotencyMiddleware
from tpp_plumbing.outbox import Outbox
from tpp_plumbing.problems import install_problem_handlers
from tpp_plumbing.runtime import Runtime

from tpp_enrollment import tables
from tpp_enrollment.config import Settings
from tpp_enrollment.consumers import subscriptions
from tpp_enrollment.http import router
from tpp_enrollment.service import EnrollmentService

NAME = "enrollment"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the enrollment app (uvicorn: ``tpp_enrollment.app:create_app --factory``)."""
    settings = settings or Settings()  # type: ignore[call-arg]  # database_url from env
    runtime = Runtime(settings, name=NAME)
    runtime.subscribe(subscriptions(runtime.sessions))
    app = FastAPI(
        title="Training Program Platform — enrollment",
        summary="Trainees, enrollments, waitlists, attendance, completion and follow-up.",
        lifespan=runtime.lifespan(),
    )
    app.state.runtime = runtime
    app.state.service = EnrollmentService(
        runtime.sessions, Outbox(tables.outbox, source=f"/{NAME}")
    )
    install_problem_handlers(app)
    app.add_middleware(IdempotencyMiddleware, sessions=runtime.sessions, table=tables.idempotency)
    app.include_router(runtime.health_router())
    app.include_router(router)
    return app
