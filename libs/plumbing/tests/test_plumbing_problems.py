"""Errors a route lets escape, as the client sees them: database outages are a 503 to retry."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy.exc import DBAPIError
from tpp_plumbing.web.problems import install_problem_handlers

RAISED: dict[str, Exception] = {
    # What a raw asyncpg connection broken by a PostgreSQL restart raises.
    "closed": asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed"),
    "gone": asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    "shutdown": asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    # A statement that is wrong, not an outage.
    "wrong": asyncpg.DivisionByZeroError("division by zero"),
}


@pytest.fixture
def app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/raise/{name}")
    async def raise_it(name: str) -> None:
        raise RAISED[name]

    return app


@pytest.mark.parametrize("name", ["closed", "gone", "shutdown"])
async def test_a_broken_raw_connection_is_a_503_to_retry(app: FastAPI, name: str) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
        response = await client.get(f"/raise/{name}")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "the database connection was lost; retry the request"


async def test_a_failed_statement_is_a_500_that_tells_nothing(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/raise/wrong")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "division" not in response.text


def test_a_rate_lets_a_burst_through_then_one_per_interval() -> None:
    from tpp_plumbing.web.ratelimit import parse_rates

    (rate,) = parse_rates("3/minute", "rate_limit_commands")
    for _ in range(3):
        assert rate.wait("a", 100.0) == 0
        rate.take("a", 100.0)
    assert rate.wait("a", 100.0) == pytest.approx(20.0)  # a token every 20 s
    assert rate.wait("b", 100.0) == 0  # another principal
    assert rate.wait("a", 120.0) == 0
    assert str(rate) == "3/minute"
    with pytest.raises(ValueError, match="not a rate"):
        parse_rates("3/fortnight", "rate_limit_commands")


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 55432)"),
        DBAPIError("BEGIN", None, asyncpg.ConnectionDoesNotExistError("closed"), False, True),
        ExceptionGroup("task group", [OSError(104, "Connection reset by peer")]),
    ],
    ids=["refused", "invalidated", "in a task group"],
)
async def test_an_outage_met_in_a_middleware_is_a_503_too(error: Exception) -> None:
    # Middlewares (idempotency, audit) reach the database before any route does; what they
    # raise passes the route handlers by, to the catch-all, which answered 500 during the
    # fault suite's PostgreSQL restart.
    app = FastAPI()
    install_problem_handlers(app)

    @app.middleware("http")
    async def claim(request: Request, call_next: Any) -> Response:
        raise error

    @app.get("/ok")
    async def ok() -> None:
        return None

    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/ok")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/problem+json"
