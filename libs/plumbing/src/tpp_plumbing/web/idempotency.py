"""Idempotency-Key for POST requests: a retried request gets the first request's response.

The first request with a key runs and its response (status, body, content type) is stored
under the key with a fingerprint of the request. A retry with the same key and the same
request gets the stored response (``Idempotent-Replayed: true``); the same key with another
request is refused (422), and a retry while the first is still running gets 409. The answer
is stored before it is sent, so a retry sent after it arrived is a replay. Server errors (5xx)
are not stored, so the client can retry them.

A first request that never finished (its process was killed, or PostgreSQL went away before
its claim could be released) would leave its key "in progress" for ever; a retry of the same
request finding such a claim older than ``stale_after_s`` takes it over and runs the request
again. Unless the first one had committed: a command's transaction marks its key
``COMMITTED`` (``mark_committed``, called by the unit of work, ``tpp_plumbing.db.uow``, when
it writes events), and a retry of a command that
committed but whose answer was lost is never run again: once the claim is stale it gets 409
"Request applied, answer lost" (read the resource to see the result).

Keys belong to whoever sent them: the fingerprint covers the principal (role, organizer,
subject), so another caller reusing a key gets 422, never the first caller's response; a
request without a valid token is passed on untouched (and answered 401 by the route).
"""

from __future__ import annotations

import hashlib
import json
from contextvars import ContextVar
from datetime import timedelta

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    Interval,
    LargeBinary,
    MetaData,
    Table,
    Text,
    cast,
    delete,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tpp_plumbing.db.writes import RawTransaction
from tpp_plumbing.web.auth import principal_of

HEADER = b"idempotency-key"
REPLAYED_HEADERS = (b"etag", b"location")
MAX_KEY_LENGTH = 255
#: An in-progress claim older than this was abandoned (its request would have finished).
STALE_AFTER_S = 30.0
#: ``status`` of a key whose command committed its change but has not stored its answer yet.
COMMITTED = 0

# (table name, stored key) of the request being run: its transaction marks it COMMITTED.
_running: ContextVar[tuple[str, str] | None] = ContextVar("tpp_idempotency_key", default=None)


def committed_mark(param: int) -> tuple[str, str] | None:
    """``mark_committed`` for a command written in one statement: an UPDATE (to run as one of
    its data-modifying parts) with the key as parameter ``$param``, and the key.

    None outside a request with an Idempotency-Key (and once the answer is stored).
    """
    running = _running.get()
    if running is None:
        return None
    table, key = running
    return f"UPDATE {table} SET status = {COMMITTED} WHERE key = ${param} AND status IS NULL", key


async def mark_committed(session: AsyncSession | RawTransaction) -> None:
    """Inside a command's transaction: if it commits, its key is never run again.

    A no-op outside a request with an Idempotency-Key (and once the answer is stored).
    """
    running = _running.get()
    if running is None:
        return
    table, key = running
    query = f"UPDATE {table} SET status = {COMMITTED} WHERE key = $1 AND status IS NULL"
    if isinstance(session, RawTransaction):
        await session.execute(query, key)
    else:
        await session.execute(text(query.replace("$1", ":key")), {"key": key})


def idempotency_table(metadata: MetaData) -> Table:
    """The stored responses, in a service's own metadata (its migrations create it)."""
    return Table(
        "idempotency_key",
        metadata,
        Column("key", Text, primary_key=True),
        Column("fingerprint", Text, nullable=False),
        Column("status", Integer),  # NULL while the first request runs
        Column("content_type", Text),
        Column("body", LargeBinary),
        # Response headers a client relies on (ETag, Location), replayed with the body.
        Column("headers", JSONB),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def _problem(status: int, title: str, detail: str) -> tuple[int, bytes]:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return status, json.dumps(body).encode()


class IdempotencyMiddleware:
    """ASGI middleware honouring ``Idempotency-Key`` on POST requests."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        sessions: async_sessionmaker[AsyncSession],
        table: Table,
        stale_after_s: float = STALE_AFTER_S,
    ) -> None:
        self.app = app
        self._sessions = sessions
        self._table = table
        self._stale_after = timedelta(seconds=stale_after_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        raw_key = dict(scope["headers"]).get(HEADER)
        if raw_key is None:
            await self.app(scope, receive, send)
            return
        key = raw_key.decode("latin-1")
        if not key or len(key) > MAX_KEY_LENGTH:
            await _send(send, *_problem(400, "Bad Idempotency-Key", "1 to 255 characters"))
            return
        owner = ""
        legacy = None
        if getattr(getattr(scope.get("app"), "state", None), "auth", None) is not None:
            principal = await principal_of(scope)
            if principal is None:
                await self.app(scope, receive, send)
                return
            owner = f"{principal.role}:{principal.organizer_id or ''}:{principal.subject}\0"
        body = await _read_body(receive)
        if body is None:  # part of a body is not the request: nothing to run, none to answer
            return
        request = scope["path"].encode() + b"\0" + scope.get("query_string", b"") + b"\0" + body
        fingerprint = hashlib.sha256(owner.encode() + request).hexdigest()
        if owner.startswith("operator:"):
            # Responses stored before tokens existed have no owner: operators' requests.
            legacy = hashlib.sha256(request).hexdigest()
        stored_key = f"{scope['path']} {key}"
        async with self._sessions() as db, db.begin():
            claimed = await db.scalar(
                insert(self._table)
                .values(key=stored_key, fingerprint=fingerprint)
                .on_conflict_do_nothing()
                .returning(self._table.c.key)
            )
            existing = None
            if claimed is None:
                claimed = await self._take_over_abandoned(db, stored_key, fingerprint, legacy)
            if claimed is None:
                t = self._table
                stale = t.c.created_at < func.now() - cast(literal(self._stale_after), Interval)
                existing = (
                    await db.execute(select(t, stale.label("stale")).where(t.c.key == stored_key))
                ).first()
        if existing is not None:
            if existing.fingerprint not in (fingerprint, legacy):
                await _send(
                    send,
                    *_problem(
                        422,
                        "Idempotency-Key reused",
                        "this key was used with a different request",
                    ),
                )
            elif existing.status == COMMITTED and existing.stale:
                await _send(
                    send,
                    *_problem(
                        409,
                        "Request applied, answer lost",
                        "the first request was applied but its answer was lost: read the"
                        " resource for its result",
                    ),
                )
            elif existing.status is None or existing.status == COMMITTED:
                await _send(
                    send, *_problem(409, "Request in progress", "the first request still runs")
                )
            else:
                await _send(
                    send,
                    existing.status,
                    existing.body,
                    existing.content_type or "application/json",
                    replayed=True,
                    extra=existing.headers or {},
                )
            return
        await self._run_and_store(scope, body, send, stored_key)

    async def _take_over_abandoned(
        self, db: AsyncSession, key: str, fingerprint: str, legacy: str | None
    ) -> str | None:
        """Claim the key of the same request left in progress for too long; None if none."""
        t = self._table
        taken: str | None = await db.scalar(
            update(t)
            .where(
                t.c.key == key,
                t.c.status.is_(None),
                t.c.fingerprint.in_([fingerprint, legacy or fingerprint]),
                t.c.created_at < func.now() - cast(literal(self._stale_after), Interval),
            )
            .values(created_at=func.now(), fingerprint=fingerprint)
            .returning(t.c.key)
        )
        return taken

    async def _run_and_store(self, scope: Scope, body: bytes, send: Send, key: str) -> None:
        # The answer is held until it is stored: a client retrying as soon as it has the
        # first answer must find it (sent first, a retry got "409 Request in progress"
        # whenever it overtook the store).
        messages: list[Message] = []
        status = 500
        delivered = False

        async def replay_receive() -> Message:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def hold(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            messages.append(message)

        running = _running.set((self._table.name, key))
        try:
            await self.app(scope, replay_receive, hold)
        except BaseException:
            status = 500  # whatever was held: the error is what the client gets
            raise
        finally:
            _running.reset(running)
            await self._store(key, status, messages)
        for message in messages:
            await send(message)

    async def _store(self, key: str, status: int, messages: list[Message]) -> None:
        """Keep the answer under the key; forget the key if the answer is a server error."""
        t = self._table
        async with self._sessions() as db, db.begin():
            if status >= 500:
                # Not kept, so that the client may retry; unless the command committed.
                await db.execute(delete(t).where(t.c.key == key, t.c.status.is_(None)))
                return
            content_type = None
            headers: dict[str, str] = {}
            for name, value in messages[0].get("headers", []):
                if name.lower() == b"content-type":
                    content_type = value.decode("latin-1")
                elif name.lower() in REPLAYED_HEADERS:
                    headers[name.lower().decode()] = value.decode("latin-1")
            answer = b"".join(
                m.get("body", b"") for m in messages if m["type"] == "http.response.body"
            )
            await db.execute(
                update(t)
                .where(t.c.key == key)
                .values(status=status, content_type=content_type, body=answer, headers=headers)
            )


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body; None if the client left (or was timed out) before sending it all."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _send(
    send: Send,
    status: int,
    body: bytes,
    content_type: str = "application/problem+json",
    *,
    replayed: bool = False,
    extra: dict[str, str] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    headers.extend((k.encode(), v.encode("latin-1")) for k, v in (extra or {}).items())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
