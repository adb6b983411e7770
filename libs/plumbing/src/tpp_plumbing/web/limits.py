"""Input limits: request bodies capped while they stream in, page sizes, CSV uploads.

Every refusal is an RFC 9457 problem naming the limit (the setting) and its value:
413 for a body or a CSV file that is too large (bytes or rows), 422 naming ``limit`` for a
page size above the service's maximum.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BeforeValidator, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tpp_plumbing.web.problems import PROBLEM_JSON, ProblemError

# What a multipart request adds around the file it carries (boundaries, part headers, the
# file name): the body cap of an upload route is the file cap plus this.
MULTIPART_OVERHEAD = 64 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """The input limits of one service (from its settings)."""

    max_body_bytes: int
    max_page_size: int
    csv_max_bytes: int = 0
    csv_max_rows: int = 0
    # Paths that take a CSV upload: their body may be csv_max_bytes (plus framing).
    upload_paths: frozenset[str] = field(default_factory=frozenset)

    def body_cap(self, path: str) -> tuple[int, str]:
        """The largest body accepted on ``path`` and the setting that says so."""
        if path in self.upload_paths:
            return self.csv_max_bytes + MULTIPART_OVERHEAD, "csv_max_bytes"
        return self.max_body_bytes, "max_body_bytes"


class TooLargeError(ProblemError):
    """The request's content is larger than a configured limit (413 naming the limit)."""

    status = 413
    title = "Content too large"


class BodyTooLargeError(StarletteHTTPException):
    """Raised while a body streams in, once it passes the cap (FastAPI lets it through)."""

    def __init__(self, cap: int, setting: str) -> None:
        super().__init__(413, f"the request body is larger than {cap} bytes")
        self.cap = cap
        self.setting = setting

    def problem(self) -> dict[str, Any]:
        """The problem document of this refusal."""
        return {
            "type": "about:blank",
            "title": TooLargeError.title,
            "status": 413,
            "detail": str(self.detail),
            "limit": self.setting,
            "max_bytes": self.cap,
        }


class BodyLimitMiddleware:
    """Refuses request bodies over the cap with 413, without ever holding more than the cap.

    A declared ``Content-Length`` over the cap is refused before anything is read; a body
    sent without one (chunked) is counted as it arrives and refused once it passes the cap.
    """

    def __init__(self, app: ASGIApp, *, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap, setting = self.limits.body_cap(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > cap:
            await _refuse(send, BodyTooLargeError(cap, setting))
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise BodyTooLargeError(cap, setting)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLargeError as error:
            # Raised where no exception handler sees it (a middleware reading the body).
            if started:
                raise
            await _refuse(send, error)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, error: BodyTooLargeError) -> None:
    body = json.dumps(error.problem()).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def install_limits(app: FastAPI, limits: Limits) -> None:
    """Cap request bodies (middleware) and make the limits known to the routes."""
    app.state.limits = limits
    app.add_middleware(BodyLimitMiddleware, limits=limits)

    @app.exception_handler(BodyTooLargeError)
    async def on_too_large(_: Request, error: BodyTooLargeError) -> JSONResponse:
        headers = {"Connection": "close"}
        return JSONResponse(error.problem(), 413, headers=headers, media_type=PROBLEM_JSON)


def limits_of(request: Request) -> Limits:
    """The limits of the app serving ``request``."""
    limits: Limits = request.app.state.limits
    return limits


def page_size(default: int) -> Any:
    """A ``limit`` query parameter: 1 to the service's ``max_page_size`` (422 naming it)."""

    async def limit(
        request: Request,
        limit: Annotated[
            int,
            Query(ge=1, description="Page size: 1 to the service's MAX_PAGE_SIZE setting."),
        ] = default,
    ) -> int:
        maximum = limits_of(request).max_page_size
        if "limit" not in request.query_params:
            return min(limit, maximum)  # the default, within a maximum set below it
        if limit > maximum:
            raise RequestValidationError(
                [
                    {
                        "type": "less_than_equal",
                        "loc": ("query", "limit"),
                        "msg": f"Input should be less than or equal to {maximum}"
                        " (the service's MAX_PAGE_SIZE)",
                        "input": limit,
                        "ctx": {"le": maximum},
                    }
                ]
            )
        return limit

    return Depends(limit)


# PostgreSQL text cannot hold NUL: such a string is refused at the edge (422 naming the
# field), never passed to the database (where it would be a server error).
NO_NUL = r"^[^\x00]*$"
Text = Annotated[str, StringConstraints(pattern=NO_NUL)]
"""A string of text for the database: any characters but NUL (give it a max_length)."""

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value: Any) -> Any:
    # pydantic reads a number as a Unix time (``as_of=0`` is 1970-01-01): a query's date is
    # written as one, nothing else.
    if isinstance(value, str | int | float) and not (
        isinstance(value, str) and _ISO_DATE.fullmatch(value)
    ):
        raise ValueError("a date is written YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
"""A date given as text (a query parameter): ``YYYY-MM-DD`` only (422 naming it otherwise)."""

# Deep offsets make PostgreSQL walk and drop every row before the page: bounded.
MAX_OFFSET = 1_000_000
Offset = Annotated[
    int, Query(ge=0, le=MAX_OFFSET, description=f"Rows to skip (at most {MAX_OFFSET:,}).")
]


async def read_upload(file: UploadFile, request: Request) -> bytes:
    """An uploaded CSV file's bytes; 413 naming ``csv_max_bytes`` if it is larger."""
    cap = limits_of(request).csv_max_bytes
    content = await file.read(cap + 1)
    if len(content) > cap:
        raise TooLargeError(
            f"the file is larger than {cap} bytes",
            field="file",
            limit="csv_max_bytes",
            max_bytes=cap,
        )
    return content


def check_rows(count: int, max_rows: int) -> None:
    """413 naming ``csv_max_rows`` when a CSV file has more data rows than allowed."""
    if count > max_rows:
        raise TooLargeError(
            f"the file has more than {max_rows} rows",
            field="file",
            limit="csv_max_rows",
            max_rows=max_rows,
        )


__all__ = [
    "MAX_OFFSET",
    "NO_NUL",
    "BodyLimitMiddleware",
    "BodyTooLargeError",
    "IsoDate",
    "Limits",
    "Offset",
    "Text",
    "TooLargeError",
    "check_rows",
    "install_limits",
    "page_size",
    "read_upload",
]
