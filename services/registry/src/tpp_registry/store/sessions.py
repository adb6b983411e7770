"""Registry storage: queries and writes on the caller's transaction; never commits."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import (
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from tpp_contracts.vocab import SessionStatus, TechnicalField
from tpp_plumbing.db.writes import RawTransaction
from tpp_plumbing.web.problems import ProblemError

from tpp_registry.domain import DETAIL_FIELDS, SessionFilter, SessionState
from tpp_registry.store import tables

ts = tables.training_session
org = tables.organizer
_STATE_COLUMNS = [ts.c[name] for name in (*DETAIL_FIELDS, "id", "overseas", "status", "version")]


def _state(row: Any) -> SessionState:
    values = dict(row)
    values["languages"] = tuple(values["languages"])
    values["field"] = TechnicalField(values["field"])
    values["status"] = SessionStatus(values["status"])
    return SessionState(**values)


def _row(state: SessionState) -> dict[str, Any]:
    values = {c.name: getattr(state, c.name) for c in _STATE_COLUMNS}
    return values | {
        "languages": list(state.languages),
        "field": state.field.value,
        "status": state.status.value,
    }


async def get_session(db: AsyncSession, session_id: uuid.UUID, *, lock: bool = False) -> Any:
    """A session's state, or None; ``lock`` takes its row lock (orders its events)."""
    query = select(*_STATE_COLUMNS).where(ts.c.id == session_id)
    if lock:
        query = query.with_for_update()
    row = (await db.execute(query)).mappings().first()
    return None if row is None else _state(row)


async def add_sessions(db: AsyncSession, states: list[SessionState]) -> None:
    """Insert new sessions."""
    if states:
        await db.execute(insert(ts), [_row(s) for s in states])


def _add_session_sql() -> str:
    names = [c.name for c in _STATE_COLUMNS]
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    typed = [f"${n}::{ts.c[name].type.compile(dialect)}" for n, name in enumerate(names, 1)]
    organizer = 1 + names.index("organizer_id")
    return (
        f"INSERT INTO {ts.name} ({', '.join(names)}) SELECT {', '.join(typed)}"
        f" WHERE EXISTS (SELECT FROM {org.name} WHERE id = ${organizer}) RETURNING id"
    )


# On a raw transaction (tpp_plumbing.db.writes): creating sessions is the registry's busiest
# command. Every state column as a typed parameter, in _STATE_COLUMNS order.
_ADD_SESSION = _add_session_sql()


async def add_session_of_known_organizer(tx: RawTransaction, state: SessionState) -> bool:
    """Insert a new session if its organizer exists (one statement); whether it did."""
    values = _row(state)
    added = await tx.fetchrow(_ADD_SESSION, *(values[c.name] for c in _STATE_COLUMNS))
    return added is not None


async def save_session(db: AsyncSession, state: SessionState) -> None:
    """Write a session's new state (its row is locked by the caller)."""
    values = _row(state)
    del values["id"]
    await db.execute(update(ts).where(ts.c.id == state.id).values(**values, updated_at=func.now()))


async def organizer_exists(db: AsyncSession, organizer_id: uuid.UUID) -> bool:
    """Whether an organizer has this id."""
    found = await db.scalar(select(org.c.id).where(org.c.id == organizer_id))
    return found is not None


# --- pages -----------------------------------------------------------------------------------


def encode_cursor(start: date, session_id: uuid.UUID) -> str:
    """An opaque cursor after the session (start date, id)."""
    raw = json.dumps([start.isoformat(), str(session_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[date, uuid.UUID]:
    """The position a cursor names; 422 when it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        start, sid = json.loads(base64.urlsafe_b64decode(padded))
        return date.fromisoformat(start), uuid.UUID(sid)
    except (ValueError, TypeError, binascii.Error):
        raise ProblemError("cursor is not valid", status=422, field="cursor") from None


def _next(rows: list[Any], limit: int) -> str | None:
    if len(rows) <= limit:
        return None
    last = rows[limit - 1]
    return encode_cursor(last["start_date"], last["id"])


# --- hot reads: one plain statement on a raw connection (tpp_plumbing.db.reads) ----------------

Fetch = Callable[..., Awaitable[list[Any]]]

#: The columns of SessionFilter's fields, in order; SQL names only these fixed columns.
_FILTER_COLUMNS = ("year", "field", "organizer_id", "status", "overseas", "venue_country")


def _filter_values(where: SessionFilter) -> list[Any]:
    return [
        where.year,
        where.field.value if where.field else None,
        where.organizer_id,
        where.status.value if where.status else None,
        where.overseas,
        where.country,
    ]


def _page_sql(
    select_from: str, conditions: list[str], args: list[Any], cursor: str | None, limit: int
) -> str:
    if cursor is not None:
        start, after = decode_cursor(cursor)
        args += [start, after]
        conditions.append(f"(t.start_date, t.id) > (${len(args) - 1}, ${len(args)})")
    args.append(limit + 1)  # one more than asked tells whether a next page exists
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"{select_from}{where} ORDER BY t.start_date, t.id LIMIT ${len(args)}"


def _conditions(where: SessionFilter, args: list[Any]) -> list[str]:
    conditions = []
    for column, value in zip(_FILTER_COLUMNS, _filter_values(where), strict=True):
        if value is not None:
            args.append(value)
            conditions.append(f"t.{column} = ${len(args)}")
    return conditions


async def list_sessions(
    fetch: Fetch, where: SessionFilter, cursor: str | None, limit: int, fields: Sequence[str]
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of sessions by (start date, id) as rows of ``fields``, and the next cursor."""
    args: list[Any] = []
    conditions = _conditions(where, args)
    columns = ", ".join(f"t.{f}" for f in fields)
    sql = _page_sql(f"SELECT {columns} FROM training_session t", conditions, args, cursor, limit)
    rows = [dict(zip(fields, row, strict=True)) for row in await fetch(sql, *args)]
    return rows[:limit], _next(rows, limit)


async def catalogue(
    fetch: Fetch,
    where: SessionFilter,
    text: str | None,
    cursor: str | None,
    limit: int,
    fields: Sequence[str],
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of published sessions with their organizer's name, optionally text-searched."""
    args: list[Any] = [SessionStatus.PUBLISHED.value]
    conditions = ["t.status = $1", *_conditions(where, args)]
    if text:
        args += [text, f"%{_escape_like(text)}%"]
        # Full text for words, a title match for fragments stemming misses ("micro-gr").
        conditions.append(
            f"(t.search @@ websearch_to_tsquery('english', ${len(args) - 1})"
            f" OR t.title ILIKE ${len(args)})"
        )
    columns = ", ".join("o.name" if f == "organizer_name" else f"t.{f}" for f in fields)
    select_from = (
        f"SELECT {columns} FROM training_session t JOIN organizer o ON o.id = t.organizer_id"
    )
    sql = _page_sql(select_from, conditions, args, cursor, limit)
    rows = [dict(zip(fields, row, strict=True)) for row in await fetch(sql, *args)]
    return rows[:limit], _next(rows, limit)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
