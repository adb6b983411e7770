"""The HTTP edge under uvicorn: header caps, slow-client timeouts, a concurrency cap.

uvicorn's httptools protocol takes headers of any size (a 16 MB header line was answered
200), waits for ever for a client sending its headers or its body a byte at a time, and
answers its own concurrency limit with a bare text 503. :func:`protocol_class` gives the
protocol ``tpp_plumbing.serve`` runs, which, per connection:

- refuses a request line plus header fields over ``max_header_bytes``, counted as they
  arrive, or more than ``max_header_count`` fields: 431;
- closes a connection whose request headers are not complete ``header_timeout_s`` after its
  first byte (a new connection: after it opened), or whose body has not all arrived
  ``body_timeout_s`` after the headers: 408 if nothing was answered yet;
- answers 503 with ``Retry-After`` once the worker holds more than ``max_concurrency``
  connections or requests in flight.

Every refusal is an RFC 9457 problem naming the setting, sent with ``Connection: close``.
uvicorn has no options for these with httptools (``h11_max_incomplete_event_size`` is h11's,
a slower parser): the protocol subclasses uvicorn's and keeps its parsing.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httptools
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

# tpp_plumbing.web.problems' media type; not imported from there: a worker of tpp_plumbing.serve
# imports this module before the app, and problems brings FastAPI and the database drivers.
PROBLEM_JSON = "application/problem+json"

_TITLES = {
    408: "Request timeout",
    431: "Request header fields too large",
    503: "Service unavailable",
}


class HttpSettings(BaseSettings):
    """What a service's HTTP edge enforces itself; read from ``TPP_HTTP_*``, shared by all services.

    The socket-level limits apply where ``tpp_plumbing.serve`` runs the app (uvicorn); the
    rate limits and the access log are the app's own. Limits are per worker process.
    """

    model_config = SettingsConfigDict(env_prefix="TPP_HTTP_")

    max_header_bytes: int = Field(
        32_768,
        ge=1024,
        description="Largest request line plus header fields, in bytes: 431, and the connection"
        " closed, past it.",
    )
    max_header_count: int = Field(
        100, ge=8, description="Most header fields in a request: 431 past it."
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Time from a connection's first byte (or a request's) until its headers are"
        " complete: 408 and the connection closed past it (slow-header clients).",
    )
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Time from the end of the headers until the whole body arrived: 408 and the"
        " connection closed past it (slow-body clients).",
    )
    max_concurrency: int = Field(
        1000,
        ge=1,
        description="Connections (or requests in flight) a worker serves at once: further"
        " requests get 503 with Retry-After.",
    )
    rate_limit_commands: str = Field(
        "20/second",
        description="Commands (POST, PUT, PATCH, DELETE) a principal (token subject, role and"
        " organizer) may send per worker, in the `limits` package's notation ('20/second;"
        "600/minute'); empty: no limit. Past it: 429 with Retry-After.",
    )
    rate_limit_imports: str = Field(
        "10/minute",
        description="CSV imports (the service's upload paths) a principal may send per worker,"
        " counted besides the commands; empty: no limit.",
    )
    access_log: bool = Field(
        True,
        description="Log one line per request: method, route template, status and duration"
        " (never the path or the query, which may carry personal data).",
    )


class _RefusedError(Exception):
    """Raised in a parser callback to stop parsing a request already refused."""


def problem_bytes(status: int, detail: str, **extensions: Any) -> bytes:
    """A whole HTTP/1.1 response: the problem document, ``Connection: close``."""
    document = {"type": "about:blank", "title": _TITLES[status], "status": status}
    body = json.dumps({**document, "detail": detail, **extensions}).encode()
    head = [
        STATUS_LINE[status],
        b"content-type: " + PROBLEM_JSON.encode() + b"\r\n",
        b"content-length: " + str(len(body)).encode() + b"\r\n",
        b"connection: close\r\n",
    ]
    if status == 503:
        head.append(b"retry-after: 1\r\n")
    return b"".join([*head, b"\r\n", body])


async def _busy(scope: Any, receive: Any, send: Any) -> None:
    body = json.dumps(
        {
            "type": "about:blank",
            "title": _TITLES[503],
            "status": 503,
            "detail": "the server holds as many connections as it serves at once; retry",
            "limit": "max_concurrency",
        }
    ).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of :class:`HttpSettings`."""

    settings = HttpSettings()

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._served_app = self.app
        self.limit_concurrency = None  # checked here, answered as a problem
        self._in_head = True
        self._head_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._refused = False

    # -- connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's
        super().connection_made(transport)
        self._arm(self.settings.header_timeout_s, self._headers_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._unset_keepalive_if_required()
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._refused:
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_head and self._head_bytes > self.settings.max_header_bytes:
            self._refuse_headers()

    # -- parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._timer is None:
            self._arm(self.settings.header_timeout_s, self._headers_too_slow)

    def on_headers_complete(self) -> None:
        s = self.settings
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > s.max_header_bytes or len(self.headers) > s.max_header_count:
            self._refuse_headers()
            raise _RefusedError
        self._in_head = False
        busy = len(self.connections) > s.max_concurrency or len(self.tasks) >= s.max_concurrency
        self.app = _busy if busy else self._served_app
        super().on_headers_complete()
        self._arm(s.body_timeout_s, self._body_too_slow)

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_head = True
        self._head_bytes = 0
        super().on_message_complete()

    # -- refusals

    def _refuse_headers(self) -> None:
        s = self.settings
        self._refuse(
            431,
            f"the request line and headers exceed {s.max_header_bytes} bytes"
            f" or {s.max_header_count} fields",
            limit="max_header_bytes, max_header_count",
            max_bytes=s.max_header_bytes,
            max_count=s.max_header_count,
        )

    def _headers_too_slow(self) -> None:
        self._timer = None
        seconds = self.settings.header_timeout_s
        self._refuse(
            408,
            f"the request headers did not arrive within {seconds:g} s",
            limit="header_timeout_s",
        )

    def _body_too_slow(self) -> None:
        self._timer = None
        seconds = self.settings.body_timeout_s
        self._refuse(
            408, f"the request body did not arrive within {seconds:g} s", limit="body_timeout_s"
        )

    def _refuse(self, status: int, detail: str, **extensions: Any) -> None:
        """Answer ``status`` unless an answer has begun, then close the connection; the
        application, if it waits for the body, is told the client left."""
        self._refused = True
        self._disarm()
        # Past the headers, ``cycle`` is this request's (its answer may have begun or ended:
        # nothing more is sent); in the headers, it is the previous request's, if any.
        cycle = None if self._in_head else self.cycle
        answered = cycle is not None and cycle.response_started
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        if not self.transport.is_closing():
            if not answered:
                self.transport.write(problem_bytes(status, detail, **extensions))
            self.transport.close()
        self.logger.warning("request refused: %d %s", status, extensions.get("limit", ""))

    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def protocol_class(settings: HttpSettings) -> type[EdgeProtocol]:
    """The protocol class uvicorn runs (``Config(http=...)``) with these limits."""
    return type("EdgeProtocol", (EdgeProtocol,), {"settings": settings})


__all__ = ["EdgeProtocol", "HttpSettings", "problem_bytes", "protocol_class"]
