"""The registry application: HTTP API, outbox relay."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from tpp_plumbing.db.uow import UnitsOfWork
from tpp_plumbing.messaging.outbox import Outbox
from tpp_plumbing.runtime import Runtime
from tpp_plumbing.web.app import build_app
from tpp_plumbing.web.limits import Limits

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
    app = build_app(
        runtime,
        title="Training Program Platform — registry",
        summary="Organizers, annual plans, training sessions and the public catalogue.",
        limits=Limits(
            max_body_bytes=settings.max_body_bytes,
            max_page_size=settings.max_page_size,
            csv_max_bytes=settings.csv_max_bytes,
            csv_max_rows=settings.csv_max_rows,
            upload_paths=frozenset({"/sessions/import"}),
        ),
        idempotency=tables.idempotency,
        audit=tables.audit,
        routers=[sessions.router, organizers.router, plans.router],  # the busiest first
    )
    units = UnitsOfWork(
        runtime.sessions, Outbox(tables.outbox, source=f"/{NAME}"), runtime.commands
    )
    app.state.services = Services.build(units, settings.home_country, runtime.reads)
    return app
