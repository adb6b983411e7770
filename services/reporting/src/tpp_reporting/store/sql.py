"""What the reports' statements share: the projections' state, read alone or with a report's
data in one statement, and the SQL for who counts as admitted and as one person.

A statement is its own snapshot: a report read with the state in the same statement is
exactly as fresh as the state says, and costs one round trip (no BEGIN, no COMMIT).
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec


class Rows(Protocol):
    """Where the reports' statements run: the read pool (each statement its own snapshot)."""

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...


ADMITTED = ("accepted", "attended", "completed", "no_show")
ADMITTED_SQL = "('accepted', 'attended', 'completed', 'no_show')"
# One person per trainee (an erased trainee's enrollments carry one surrogate id); rows erased
# by an older version without it (trainee_id NULL) count one person each until a rebuild.
PERSON = "coalesce(e.trainee_id, e.enrollment_id)"

#: The projections' version, events applied and newest event, as columns of ``p``.
STATE = (
    "coalesce(p.version, 0) AS version, coalesce(p.events_applied, 0) AS events_applied,"
    " p.last_event_at"
)
#: The offsets applied, as three arrays of ``c`` (``with_positions`` makes them a mapping).
POSITIONS = (
    "LATERAL (SELECT array_agg(topic) AS topics, array_agg(partition) AS partitions,"
    " array_agg(next_offset) AS offsets FROM consumer_position) c"
)
#: A token that changes with every write to the commitments (row count, newest row version).
_SETTINGS = (
    "(SELECT count(*)::text || '.' || coalesce(max(xmin::text::bigint), 0)::text"
    " FROM commitment) AS settings"
)


def with_positions(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with its ``topics``, ``partitions`` and ``offsets`` made one ``positions``
    mapping of (topic, partition) to the next offset to apply."""
    columns: list[list[Any]] = [row.pop(k) or [] for k in ("topics", "partitions", "offsets")]
    row["positions"] = {(t, p): o for t, p, o in zip(*columns, strict=True)}
    return row


async def state(conn: Rows, *, positions: bool = False) -> dict[str, Any]:
    """The projections' version, events applied, the time of the newest event, and the
    commitments' token (``settings``); with ``positions``, also the offsets applied."""
    rows = await conn.fetch(
        f"SELECT {STATE}, {_SETTINGS}"
        + (", c.topics, c.partitions, c.offsets" if positions else "")
        + " FROM (SELECT 1) one LEFT JOIN projection_state p ON p.id = 1"
        + (f", {POSITIONS}" if positions else "")
    )
    found = dict(rows[0])
    return with_positions(found) if positions else found


async def offsets(conn: Rows) -> dict[tuple[str, int], int]:
    """The next offset the live consumer will apply, per (topic, partition)."""
    rows = await conn.fetch("SELECT topic, partition, next_offset FROM consumer_position")
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def read(conn: Rows, data: str, *args: Any) -> tuple[Any, dict[str, Any]]:
    """One statement: ``data`` (an expression giving one JSON value, parameters ``$1``...)
    and the state it was read at (``state(positions=True)``'s); the value decoded."""
    rows = await conn.fetch(
        f"SELECT {STATE}, {_SETTINGS}, c.topics, c.partitions, c.offsets, ({data}) AS data"
        f" FROM (SELECT 1) one LEFT JOIN projection_state p ON p.id = 1, {POSITIONS}",
        *args,
    )
    row = with_positions(dict(rows[0]))
    value = row.pop("data")
    return (None if value is None else msgspec.json.decode(value)), row


def json_rows(query: str) -> str:
    """An expression: the rows of ``query`` as a JSON array of objects (in its order)."""
    return f"(SELECT coalesce(json_agg(t), '[]'::json) FROM ({query}) t)"


def json_row(query: str) -> str:
    """An expression: the first row of ``query`` as a JSON object (null when none)."""
    return f"(SELECT row_to_json(t) FROM ({query}) t LIMIT 1)"
