"""Registry test fixtures: the registry app on a throwaway, migrated PostgreSQL database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from tpp_registry.app import create_app
from tpp_registry.config import Settings
from tpp_testkit import bounded_teardown, fresh_year, service_client

NewOrganizer = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture(scope="session")
async def registry_app(databases: Any) -> AsyncIterator[Any]:
    """The registry app without relay or consumers: its database is real, Kafka unused."""
    url = await databases.create("registry", "_api")
    app = create_app(Settings(database_url=url, relay_enabled=False, consumers_enabled=False))
    await app.state.runtime.start()
    yield app
    await bounded_teardown(app.state.runtime.stop(), "the registry app's runtime")


@pytest.fixture(scope="session")
async def registry(registry_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the registry app."""
    async with service_client(registry_app, base_url="http://registry") as client:
        yield client


@pytest.fixture
def engine(registry_app: Any) -> AsyncEngine:
    """The registry's engine, to look at what the service stored (its outbox)."""
    engine: AsyncEngine = registry_app.state.runtime.engine
    return engine


@pytest.fixture
def year() -> int:
    """A program year no other test of the run uses, so counts and pages are this test's (and
    the platform's reports of other years are not disturbed: all tests share the run's topics)."""
    return fresh_year(neighbours=False)


def organizer_body(**overrides: Any) -> dict[str, Any]:
    """A valid new organizer with a unique name."""
    return {
        "name": f"Zhejiang University {uuid.uuid4().hex[:8]}",
        "kind": "university",
        "province": "Zhejiang",
        "country": "CN",
        "contact": "training@example.edu.cn",
    } | overrides


def session_body(organizer_id: str, year: int, **overrides: Any) -> dict[str, Any]:
    """A valid new session in ``year``; override any field."""
    return {
        "organizer_id": organizer_id,
        "title": "Solar micro-grids for rural electrification",
        "field": "new_energy",
        "year": year,
        "start_date": f"{year}-05-10",
        "end_date": f"{year}-05-30",
        "venue_city": "Hangzhou",
        "venue_country": "CN",
        "capacity": 30,
        "languages": ["en"],
        "description": "Design and operation of off-grid photovoltaic systems.",
    } | overrides


@pytest.fixture
def new_organizer(registry: httpx.AsyncClient) -> NewOrganizer:
    """Create an organizer through the API; returns its JSON."""

    async def create(**overrides: Any) -> dict[str, Any]:
        response = await registry.post("/organizers", json=organizer_body(**overrides))
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    return create


@pytest.fixture
def new_session(
    registry: httpx.AsyncClient, new_organizer: NewOrganizer, year: int
) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Create a draft session (with a new organizer unless given) in this test's year."""

    async def create(organizer_id: str | None = None, **overrides: Any) -> dict[str, Any]:
        organizer_id = organizer_id or (await new_organizer())["id"]
        body = session_body(organizer_id, overrides.pop("year", year), **overrides)
        response = await registry.post("/sessions", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    return create


@pytest.fixture(name="organizer_body")
def _organizer_body() -> Callable[..., dict[str, Any]]:
    """The organizer factory, for tests that post it themselves."""
    return organizer_body


@pytest.fixture(name="session_body")
def _session_body() -> Callable[..., dict[str, Any]]:
    """The session factory, for tests that post it themselves."""
    return session_body
