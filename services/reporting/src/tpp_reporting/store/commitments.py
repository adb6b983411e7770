"""The commitments operators configure: plain statements on the ``commitment`` table.

The writes take the unit of work's session and run on the connection under it; the reads
take the report's snapshot (or the read pool).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tpp_reporting.store.connection import raw_connection
from tpp_reporting.store.reports import Rows

_COLUMNS = ("name", "metric", "target", "start_year", "end_year", "field", "region")


async def add(db: AsyncSession, commitment_id: uuid.UUID, values: dict[str, Any]) -> None:
    """Insert a commitment."""
    conn = await raw_connection(db)
    await conn.execute(
        "INSERT INTO commitment (commitment_id, name, metric, target, start_year,"
        " end_year, field, region) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        commitment_id,
        *(values[c] for c in _COLUMNS),
    )


async def replace(db: AsyncSession, commitment_id: uuid.UUID, values: dict[str, Any]) -> bool:
    """Replace a commitment's definition; False when there is none with that id."""
    conn = await raw_connection(db)
    status = await conn.execute(
        "UPDATE commitment SET name = $2, metric = $3, target = $4, start_year = $5,"
        " end_year = $6, field = $7, region = $8 WHERE commitment_id = $1",
        commitment_id,
        *(values[c] for c in _COLUMNS),
    )
    return not status.endswith(" 0")


async def remove(db: AsyncSession, commitment_id: uuid.UUID) -> bool:
    """Delete a commitment; False when there is none with that id."""
    conn = await raw_connection(db)
    status = await conn.execute("DELETE FROM commitment WHERE commitment_id = $1", commitment_id)
    return not status.endswith(" 0")


async def every(conn: Rows) -> list[dict[str, Any]]:
    """Every commitment, by start year and name."""
    rows = await conn.fetch("SELECT * FROM commitment ORDER BY start_year, name")
    return [dict(r) for r in rows]


async def one(conn: Rows, commitment_id: uuid.UUID) -> dict[str, Any] | None:
    """One commitment, or None."""
    rows = await conn.fetch("SELECT * FROM commitment WHERE commitment_id = $1", commitment_id)
    return dict(rows[0]) if rows else None
