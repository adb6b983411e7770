"""The commitments operators configure: plain statements on the ``commitment`` table."""

from __future__ import annotations

import uuid
from typing import Any

from tpp_reporting.store.projection import Connection

_COLUMNS = ("name", "metric", "target", "start_year", "end_year", "field", "region")


async def add(conn: Connection, commitment_id: uuid.UUID, values: dict[str, Any]) -> None:
    """Insert a commitment."""
    await conn.execute(
        "INSERT INTO commitment (commitment_id, name, metric, target, start_year,"
        " end_year, field, region) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        commitment_id,
        *(values[c] for c in _COLUMNS),
    )


async def replace(conn: Connection, commitment_id: uuid.UUID, values: dict[str, Any]) -> bool:
    """Replace a commitment's definition; False when there is none with that id."""
    status = await conn.execute(
        "UPDATE commitment SET name = $2, metric = $3, target = $4, start_year = $5,"
        " end_year = $6, field = $7, region = $8 WHERE commitment_id = $1",
        commitment_id,
        *(values[c] for c in _COLUMNS),
    )
    return not status.endswith(" 0")


async def remove(conn: Connection, commitment_id: uuid.UUID) -> bool:
    """Delete a commitment; False when there is none with that id."""
    status = await conn.execute("DELETE FROM commitment WHERE commitment_id = $1", commitment_id)
    return not status.endswith(" 0")


async def every(conn: Connection) -> list[dict[str, Any]]:
    """Every commitment, by start year and name."""
    rows = await conn.fetch("SELECT * FROM commitment ORDER BY start_year, name")
    return [dict(r) for r in rows]


async def one(conn: Connection, commitment_id: uuid.UUID) -> dict[str, Any] | None:
    """One commitment, or None."""
    rows = await conn.fetch("SELECT * FROM commitment WHERE commitment_id = $1", commitment_id)
    return dict(rows[0]) if rows else None
