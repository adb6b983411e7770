"""Helpers for the enrollment service's integration tests: an app on a throwaway database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI
from tpp_enrollment.app import create_app
from tpp_enrollment.config import Settings
from tpp_plumbing.db.engine import asyncpg_dsn
from tpp_testkit import service_client


@dataclass
class App:
    """The enrollment app (no relay, no consumers) on its own database."""

    app: FastAPI
    http: httpx.AsyncClient
    url: str

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(asyncpg_dsn(self.url))
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def open_session(self, capacity: int, **overrides: Any) -> uuid.UUID:
        """A published session in the view, as the registry's events would leave it."""
        session_id = uuid.uuid4()
        values = {"review_required": False, "country_limit": None, "organizer_id": None}
        values |= overrides
        await self.fetch(
            "INSERT INTO session_view (session_id, status, year, start_date, end_date, capacity,"
            " review_required, country_limit, organizer_id, version)"
            " VALUES ($1, 'published', 2031, $2, $3, $4, $5, $6, $7, 1)",
            session_id,
            date(2031, 5, 1),
            date(2031, 5, 20),
            capacity,
            values["review_required"],
            values["country_limit"],
            values["organizer_id"],
        )
        return session_id

    async def start_session(self, session_id: uuid.UUID) -> None:
        """The session in progress, as the registry's SessionStarted event would leave it."""
        await self.fetch(
            "UPDATE session_view SET status = 'in_progress' WHERE session_id = $1", session_id
        )


@asynccontextmanager
async def enrollment_app(
    databases: Any, label: str = "", *, url: str | None = None, **settings_: Any
) -> AsyncIterator[App]:
    """A migrated throwaway database (or the one at ``url``) and the app on it."""
    url = url or await databases.create("enrollment", label)
    settings = Settings(
        database_url=url,
        relay_enabled=False,
        consumers_enabled=False,
        database_pool_size=20,
        **settings_,
    )
    app = create_app(settings)
    await app.state.runtime.start()
    try:
        async with service_client(app, base_url="http://enrollment") as http:
            yield App(app, http, url)
    finally:
        try:
            # Imports still running finish first (bounded: a stuck one fails the test).
            await asyncio.wait_for(app.state.services.imports.wait(), 180)
        finally:
            await app.state.runtime.stop()


def trainee_body(**overrides: Any) -> dict[str, Any]:
    """A valid new trainee with a unique passport number; override any field."""
    body = {
        "full_name": "Amina Njoroge",
        "country": "KE",
        "gender": "female",
        "profession": "technical_professional",
        "organization": "Kenya Power",
        "email": "amina@example.org",
        "passport_number": f"K{uuid.uuid4().hex[:9].upper()}",
        "birth_date": "1988-03-14",
    }
    return body | overrides


async def register(app: App, **overrides: Any) -> str:
    """Register a trainee; its id."""
    response = await app.http.post("/trainees", json=trainee_body(**overrides))
    assert response.status_code == 201, response.text
    trainee_id: str = response.json()["id"]
    return trainee_id
