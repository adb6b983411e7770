"""The enrollment application: HTTP API, session view consumer, outbox relay."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from tpp_plumbing.db.uow import UnitsOfWork
from tpp_plumbing.messaging.outbox import Outbox
from tpp_plumbing.runtime import Runtime
from tpp_plumbing.web.app import build_app
from tpp_plumbing.web.limits import Limits

from tpp_enrollment.api import enrollments, feedback, imports, trainees
from tpp_enrollment.api.deps import Services
from tpp_enrollment.config import Settings
from tpp_enrollment.consumers import subscriptions
from tpp_enrollment.messaging import MESSAGING
from tpp_enrollment.service import (
    EnrollmentService,
    FeedbackService,
    QueryService,
    TraineeService,
)
from tpp_enrollment.service.access import AccessService
from tpp_enrollment.service.imports import ImportService
from tpp_enrollment.store import tables

#: The migrations this version ships (services/<name>/alembic).
MIGRATIONS = Path(__file__).resolve().parents[2] / "alembic"
NAME = "enrollment"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the enrollment app (uvicorn: ``tpp_enrollment.app:create_app --factory``)."""
    settings = settings or Settings()
    runtime = Runtime(settings, name=NAME, migrations=MIGRATIONS, messaging=MESSAGING)
    outbox = Outbox(tables.outbox, source=f"/{NAME}")
    units = UnitsOfWork(runtime.sessions, outbox, runtime.commands)
    runtime.subscribe(subscriptions(runtime.sessions, units))
    personal = settings.personal_data()
    services = Services(
        trainees=TraineeService(units, personal),
        enrollments=EnrollmentService(units),
        feedback=FeedbackService(units),
        queries=QueryService(units, personal),
        imports=ImportService(units, personal),
        access=AccessService(units),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime.lifespan()(app):
            try:
                yield
            finally:
                await services.imports.wait()

    app = build_app(
        runtime,
        title="Training Program Platform — enrollment",
        summary="Trainees, enrollments, waitlists, attendance, completion and follow-up.",
        limits=Limits(
            max_body_bytes=settings.max_body_bytes,
            max_page_size=settings.max_page_size,
            csv_max_bytes=settings.csv_max_bytes,
            csv_max_rows=settings.csv_max_rows,
            upload_paths=frozenset({"/imports"}),
        ),
        idempotency=tables.idempotency,
        audit=tables.audit,
        # Each area's routes, the busiest first (a request is matched against them in order).
        routers=tuple(module.router for module in (enrollments, trainees, feedback, imports)),
        lifespan=lifespan,
    )
    app.state.services = services
    return app
