"""The audit log: every command (non-GET request) of an operator or organizer, per service.

A row says who (subject, role, organizer), what (method and route template), on what
(the route's ids, or the id a create returned), when, under which request id, and how it
ended (the HTTP status). It holds ids only, never request bodies: no names, passports or
other personal data. The row is committed before the response leaves, so no command is
acknowledged without its record; refused commands (403, 409, 422...) are recorded too.
Rows are written in group commits (``AuditWriter``): the rows of the commands that end while
one audit insert commits go together in the next, so under load the log costs one statement
per batch rather than one per command, and nothing waits when the service is idle. The insert
is one statement on a raw connection (``tpp_plumbing.db.writes``), its columns as arrays: it
commits on its own, with no transaction round trips around it.
A command written in one statement that commits on its own (the enrollment's fast path) can
carry its audit row in that statement (``row_in_statement``): the row commits with the
command, answered with the route's success status, and the response waits for no second
commit. Should the answer end otherwise, the middleware records that too.
The table is append-only: a trigger refuses UPDATE, DELETE and TRUNCATE (migration 0401
of each service). Operators read it at ``GET /audit`` (``tpp_plumbing.web.audit_api``).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import UUID
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tpp_plumbing.db.writes import CommandPool
from tpp_plumbing.observability import telemetry
from tpp_plumbing.web.auth import Role, principal_of

log = logging.getLogger(__name__)
TABLE_NAME = "audit_log"
REQUEST_ID = b"x-request-id"
AUDITED_ROLES = (Role.OPERATOR, Role.ORGANIZER)


def audit_table(metadata: MetaData) -> Table:
    """The audit log, in a service's own metadata.

    Created, append-only by its triggers, by ``db.shared_migrations.audit_table_v1``.
    """
    return Table(
        TABLE_NAME,
        metadata,
        Column("id", BigInteger, Identity(always=True), primary_key=True),
        Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("subject", Text, nullable=False),
        Column("role", Text, nullable=False),
        Column("organizer_id", UUID(as_uuid=True)),
        Column("method", Text, nullable=False),
        Column("operation", Text, nullable=False),
        Column("target", Text),
        Column("request_id", Text, nullable=False),
        Column("status", Integer, nullable=False),
        Index(f"ix_{TABLE_NAME}_at", "at"),
        Index(f"ix_{TABLE_NAME}_subject", "subject"),
        # No index on target: ``GET /audit`` matches it by containment, which a B-tree
        # cannot answer (``tpp_plumbing.db.shared_migrations.audit_table_v2``).
    )


def _target(scope: Scope, status: int, body: bytes) -> str | None:
    """The ids the command addressed: path parameters, or the id a create answered with."""
    params = scope.get("path_params") or {}
    if params:
        return ",".join(f"{k}={v}" for k, v in sorted(params.items()))
    if status in (200, 201, 202) and body[:1] == b"{":
        try:
            created = json.loads(body).get("id")
        except (ValueError, AttributeError):
            return None
        if isinstance(created, str):
            return f"id={created}"
    return None


#: The audit row's columns that a command fills in (``id`` and ``at`` are the database's).
_COLUMNS = (
    ("subject", "text"),
    ("role", "text"),
    ("organizer_id", "uuid"),
    ("method", "text"),
    ("operation", "text"),
    ("target", "text"),
    ("request_id", "text"),
    ("status", "int"),
)


def _row(scope: Scope, principal: Any, request_id: str, status: int, body: bytes) -> dict[str, Any]:
    route = scope.get("route")
    return {
        "subject": principal.subject[:200],
        "role": principal.role.value,
        "organizer_id": principal.organizer_id,
        "method": scope["method"],
        "operation": f"{scope['method']} {getattr(route, 'path', None) or 'unmatched'}",
        "target": _target(scope, status, body),
        "request_id": request_id,
        "status": status,
    }


class AuditUnavailableError(Exception):
    """A command's audit row could not be written with it, so nothing of the command was.

    Raised by a command that wrote its row in its own statement (``row_in_statement``): the
    middleware answers as when its own insert fails (503, not acknowledged).
    """

    @staticmethod
    def caused(error: Exception) -> bool:
        """Whether a failed statement failed on the audit table (a constraint, a grant)."""
        return getattr(error, "table_name", None) == TABLE_NAME or (
            f"table {TABLE_NAME}" in str(getattr(error, "message", ""))
        )


@dataclass(slots=True)
class _Pending:
    """The audited request being handled; ``written``: the status its row was committed with
    in the command's own statement (``row_in_statement``), if it was."""

    scope: Scope
    principal: Any
    request_id: str
    written: int | None = None


_pending: contextvars.ContextVar[_Pending | None] = contextvars.ContextVar(
    "tpp_audit_pending", default=None
)


def row_in_statement(first: int) -> tuple[str, list[Any], Callable[[], None]] | None:
    """For a command written in one statement that commits on its own: an INSERT of this
    request's audit row (to run as one of its data-modifying parts, after ``WHERE`` clauses
    the caller appends), its parameters from ``$first``, and the callback to call once the
    statement committed the row. The row says the command was answered with its route's
    success status (the answer it gives when the statement commits).

    None outside an audited request, or for a route that declares no success status.
    """
    pending = _pending.get()
    status = getattr(pending.scope.get("route"), "status_code", None) if pending else None
    if pending is None or not isinstance(status, int):
        return None
    row = _row(pending.scope, pending.principal, pending.request_id, status, b"")

    def written() -> None:
        pending.written = status

    return _insert_one(first), [row[name] for name, _ in _COLUMNS], written


@functools.cache
def _insert_one(first: int) -> str:
    values = ", ".join(f"${n}::{kind}" for n, (_, kind) in enumerate(_COLUMNS, start=first))
    return f"INSERT INTO {TABLE_NAME} ({', '.join(name for name, _ in _COLUMNS)}) SELECT {values}"


class AuditWriter:
    """Group commit of audit rows: ``record`` returns once its row is committed.

    One audit insert is in flight at a time; the rows that arrive meanwhile are written
    together by the next one (at most ``max_batch`` rows each). An idle service writes a
    row at once, as before; a busy one writes one statement per batch.
    """

    def __init__(self, commands: CommandPool, table: Table, max_batch: int = 500) -> None:
        self._commands = commands
        arrays = ", ".join(f"${n}::{kind}[]" for n, (_, kind) in enumerate(_COLUMNS, start=1))
        self._insert = (
            f"INSERT INTO {table.name} ({', '.join(name for name, _ in _COLUMNS)})"
            f" SELECT * FROM unnest({arrays})"
        )
        self._max_batch = max_batch
        self._queue: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._writing: asyncio.Task[None] | None = None

    async def record(self, row: dict[str, Any]) -> None:
        """Write ``row``; raises what the insert that held it raised."""
        committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((row, committed))
        if self._writing is None or self._writing.done():
            # Its own context: the insert belongs to no single request's trace.
            self._writing = asyncio.create_task(
                self._write(), name="audit-writer", context=contextvars.Context()
            )
            self._writing.add_done_callback(self._fail_waiting)
        await committed

    def _fail_waiting(self, writer: asyncio.Task[None]) -> None:
        """A writer cancelled (even before it ran) leaves no request waiting forever."""
        if writer.cancelled():
            for _, waiting in self._queue:
                if not waiting.done():
                    waiting.set_exception(RuntimeError("audit writer cancelled"))
            self._queue.clear()

    async def _write(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            columns = [[row[name] for row, _ in batch] for name, _ in _COLUMNS]
            try:
                await self._commands.execute(self._insert, *columns)
            except BaseException as error:  # cancelled too: its batch fails, not hangs
                failure = error if isinstance(error, Exception) else RuntimeError("cancelled")
                for _, committed in batch:
                    if not committed.done():
                        committed.set_exception(failure)
                if not isinstance(error, Exception):
                    raise  # the rest of the queue: _fail_waiting
            else:
                for _, committed in batch:
                    if not committed.done():
                        committed.set_result(None)


class AuditMiddleware:
    """Records every command of an operator or organizer before its response is sent."""

    def __init__(self, app: ASGIApp, *, commands: CommandPool, table: Table) -> None:
        self.app = app
        self._writer = AuditWriter(commands, table)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(REQUEST_ID, b"").decode("latin-1")[:100]
        if not request_id:
            ids = telemetry.current_ids()
            request_id = ids[0] if ids else uuid.uuid4().hex
        principal = await principal_of(scope)
        if principal is None or principal.role not in AUDITED_ROLES:
            await self.app(scope, receive, _with_request_id(send, request_id))
            return
        # The response is held until its audit row is committed (command answers are small).
        start: Message | None = None
        chunks: list[bytes] = []
        pending = _Pending(scope, principal, request_id)

        async def hold(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    await self._flush(pending, start, chunks, send)
            else:
                await send(message)

        token = _pending.set(pending)
        try:
            await self.app(scope, receive, hold)
        except AuditUnavailableError:
            # Raised before any answer was sent: the command wrote nothing.
            log.error("audit record not written with its command")
            await self._answer(pending, _UNAVAILABLE_START, _UNAVAILABLE_BODY, send)
        finally:
            _pending.reset(token)

    async def _flush(
        self, pending: _Pending, start: Message | None, chunks: list[bytes], send: Send
    ) -> None:
        assert start is not None
        status = int(start["status"])
        body = b"".join(chunks)
        row = _row(pending.scope, pending.principal, pending.request_id, status, body)
        try:
            if pending.written != status:  # not already committed with the command
                await self._writer.record(row)
        except Exception:
            # Not recorded, not acknowledged: the client sees a failure and may retry.
            log.exception("audit record not written", extra={"operation": row["operation"]})
            start, body = _UNAVAILABLE_START, _UNAVAILABLE_BODY
        await self._answer(pending, start, body, send)

    @staticmethod
    async def _answer(pending: _Pending, start: Message, body: bytes, send: Send) -> None:
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers += [
            (b"content-length", str(len(body)).encode()),
            (REQUEST_ID, pending.request_id.encode()),
        ]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


_UNAVAILABLE_START: Message = {
    "type": "http.response.start",
    "status": 503,
    "headers": [(b"content-type", b"application/problem+json")],
}
_UNAVAILABLE_BODY = json.dumps(
    {
        "type": "about:blank",
        "title": "Audit log unavailable",
        "status": 503,
        "detail": "the command's outcome was not recorded; ask for it, then retry",
    }
).encode()


def _with_request_id(send: Send, request_id: str) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {
                **message,
                "headers": [*message.get("headers", []), (REQUEST_ID, request_id.encode())],
            }
        await send(message)

    return wrapped
