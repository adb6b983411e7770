"""RFC 9457 problem details for every error a service returns."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from tpp_plumbing.db.engine import is_database_outage

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)
_STATUSES = {s.value for s in HTTPStatus}
_TITLES = {404: "Not found", 405: "Method not allowed", 413: "Content too large"}
#: Set in the scope by a route whose JSON body did not parse (``tpp_plumbing.web.routing``): the
#: byte offset of the error. Checked after the route's dependencies (ownership) have run.
MALFORMED_JSON = "tpp.malformed_json"


class ProblemError(Exception):
    """An error a use case reports to the client, as a problem details document."""

    status = 400
    title = "Bad request"

    #: Response headers to send with the problem (e.g. ``WWW-Authenticate``).
    headers: dict[str, str] | None = None

    def __init__(self, detail: str, *, status: int | None = None, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        self.extensions = extensions


class NotFoundError(ProblemError):
    """The addressed resource does not exist."""

    status = 404
    title = "Not found"


class ConflictError(ProblemError):
    """The request conflicts with the resource's current state."""

    status = 409
    title = "Conflict"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """A problem details response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    body.update(extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    return ".".join(parts) or "<body>"


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app serves on the request's path, sorted."""
    methods: set[str] = set()
    scope = {**request.scope, "method": "GET"}
    for route in request.app.router.routes:
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(scope)[0] is not Match.NONE:
            methods |= route_methods
    return sorted(methods)


def install_problem_handlers(app: FastAPI) -> None:
    """Render validation errors, HTTP errors and ProblemErrors as RFC 9457 documents."""

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, error: RequestValidationError) -> JSONResponse:
        unparsable = request.scope.get(MALFORMED_JSON)
        if unparsable is None:
            unparsable = next(
                (
                    e.get("loc", (None, None))[-1]
                    for e in error.errors()
                    if e["type"] == "json_invalid"
                ),
                None,
            )
        if unparsable is not None:
            return problem(
                400,
                "Bad request",
                f"the body cannot be parsed as JSON (at byte {unparsable})",
                field="<body>",
                position=unparsable,
            )
        errors = [
            {"field": _field(item["loc"]), "in": str(item["loc"][0]), "detail": item["msg"]}
            for item in error.errors()
        ]
        fields = ", ".join(e["field"] for e in errors)
        return problem(422, "Invalid request", f"Invalid field(s): {fields}", errors=errors)

    @app.exception_handler(ClientDisconnect)
    async def on_gone(_: Request, __: ClientDisconnect) -> JSONResponse:
        # The client left (or was timed out, tpp_plumbing.web.edge) before its body arrived: no
        # one reads this answer, and it is no server error to log.
        return problem(400, "Bad request", "the request body did not arrive")

    @app.exception_handler(ProblemError)
    async def on_problem(_: Request, error: ProblemError) -> JSONResponse:
        return problem(
            error.status, error.title, error.detail, headers=error.headers, **error.extensions
        )

    # A connection that a PostgreSQL restart broke fails its one request (the pool is then
    # renewed): the client is told to retry, and the Idempotency-Key store keeps no 5xx.
    # asyncpg's own errors too: raw connections (the hot paths, reporting's reads) reach
    # asyncpg without SQLAlchemy, whose DBAPIError would wrap them. Left to the catch-all,
    # they went out as a 500 on a connection uvicorn then closed.
    @app.exception_handler(DBAPIError)
    @app.exception_handler(OSError)
    @app.exception_handler(asyncpg.InterfaceError)
    @app.exception_handler(asyncpg.PostgresError)
    async def on_database(_: Request, error: Exception) -> JSONResponse:
        if not is_database_outage(error):
            return await on_unexpected(_, error)
        return database_unavailable(error)

    def database_unavailable(error: Exception) -> JSONResponse:
        log.warning(
            "database unavailable",
            extra={"error_type": f"{type(error).__module__}.{type(error).__qualname__}"},
        )
        return problem(
            503,
            "Service unavailable",
            "the database connection was lost; retry the request",
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def on_unexpected(_: Request, error: Exception) -> JSONResponse:
        # What a middleware raises (idempotency, audit: they reach the database before any
        # route) comes here past the handlers above: an outage is still a 503 to retry.
        if is_database_outage(error):
            return database_unavailable(error)
        # The traceback goes to the log; the client gets no internals (they may hold data).
        log.exception("unhandled error", exc_info=error)
        return problem(500, "Internal server error", "the error was logged; try again later")

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        status = error.status_code
        title = _TITLES.get(status) or (
            HTTPStatus(status).phrase if status in _STATUSES else "Error"
        )
        headers = error.headers
        if status == 405:
            # Starlette names the methods of the first route matching the path only; a path
            # served by several routes (GET and POST apart) allows all of theirs.
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        return problem(status, title, str(error.detail), headers=headers)
