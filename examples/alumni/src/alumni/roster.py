"""The alumni roster in our own database: completions by country and by technical field.

Each batch of events is applied in one transaction together with the ids of the events it
applied; an id seen before (a redelivery: delivery is at least once) changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Literal

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from tpp_contracts import Decoded, EnrollmentCompletedV1, SessionDetails

SCHEMA = """
CREATE TABLE IF NOT EXISTS alumni_event (
    event_id uuid PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS alumni_session (
    session_id uuid PRIMARY KEY,
    field text NOT NULL
);
CREATE TABLE IF NOT EXISTS alumni_completion (
    enrollment_id uuid PRIMARY KEY,
    session_id uuid NOT NULL,
    country text NOT NULL
);
"""

Breakdown = Literal["country", "field"]


class Roster:
    """Applies events to the roster and answers how many completed, by country or field."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self) -> None:
        """Create the tables (a real service would use migrations)."""
        async with self._pool.acquire() as conn:
            await conn.execute(SCHEMA)

    async def apply(self, batch: Sequence[Decoded]) -> int:
        """Apply the events not applied before, in one transaction; returns how many were new.

        Event types we do not use (or do not know: ``event`` is None) are recorded as seen
        and otherwise ignored.
        """
        unique = {item.envelope.id: item for item in batch}
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "INSERT INTO alumni_event (event_id) SELECT unnest($1::uuid[])"
                " ON CONFLICT DO NOTHING RETURNING event_id",
                list(unique),
            )
            new: set[uuid.UUID] = {row["event_id"] for row in rows}
            for event_id, item in unique.items():
                if event_id in new:
                    await _apply(conn, item)
        return len(new)

    async def completions(self, by: Breakdown) -> dict[str, int]:
        """How many trainees completed a session, by their country or the session's field
        (``unknown`` until the session's event has arrived)."""
        # One of two constants, never input: the query's only formatted part.
        column = "c.country" if by == "country" else "coalesce(s.field, 'unknown')"
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {column} AS k, count(*) AS n FROM alumni_completion c"
                " LEFT JOIN alumni_session s USING (session_id) GROUP BY 1 ORDER BY 1"
            )
        return {row["k"]: row["n"] for row in rows}


async def _apply(conn: PoolConnectionProxy[asyncpg.Record], item: Decoded) -> None:
    event = item.event
    if isinstance(event, SessionDetails):  # created, draft updated, published: carry the field
        await conn.execute(
            "INSERT INTO alumni_session (session_id, field) VALUES ($1, $2)"
            " ON CONFLICT (session_id) DO UPDATE SET field = excluded.field",
            event.session_id,
            event.field.value,
        )
    elif isinstance(event, EnrollmentCompletedV1):
        await conn.execute(
            "INSERT INTO alumni_completion (enrollment_id, session_id, country)"
            " VALUES ($1, $2, $3)",  # once per enrollment: the event ids keep it so
            event.enrollment_id,
            event.session_id,
            event.country,
        )
