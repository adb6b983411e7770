"""The commitments operators configure, and what each has achieved per year of its period."""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tpp_reporting import regions
from tpp_reporting.store.connection import raw_connection
from tpp_reporting.store.sql import ADMITTED_SQL, PERSON, Rows, json_row, json_rows, read

_COLUMNS = ("name", "metric", "target", "start_year", "end_year", "field", "region")


async def add(db: AsyncSession, commitment_id: uuid.UUID, values: dict[str, Any]) -> None:
    """Insert a commitment."""
    await (await raw_connection(db)).execute(
        "INSERT INTO commitment (commitment_id, name, metric, target, start_year,"
        " end_year, field, region) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        commitment_id,
        *(values[c] for c in _COLUMNS),
    )


async def replace(db: AsyncSession, commitment_id: uuid.UUID, values: dict[str, Any]) -> bool:
    """Replace a commitment's definition; False when there is none with that id."""
    status = await (await raw_connection(db)).execute(
        "UPDATE commitment SET name = $2, metric = $3, target = $4, start_year = $5,"
        " end_year = $6, field = $7, region = $8 WHERE commitment_id = $1",
        commitment_id,
        *(values[c] for c in _COLUMNS),
    )
    return not status.endswith(" 0")


async def remove(db: AsyncSession, commitment_id: uuid.UUID) -> bool:
    """Delete a commitment; False when there is none with that id."""
    status = await (await raw_connection(db)).execute(
        "DELETE FROM commitment WHERE commitment_id = $1", commitment_id
    )
    return not status.endswith(" 0")


@functools.cache
def _regions() -> tuple[list[str], list[str]]:
    """(region, country) pairs as two parallel lists: each M49 region and sub-region (lower
    case) with each of its countries, for the statements to filter by a commitment's region."""
    pairs = [
        (name.lower(), code)
        for name in regions.known_regions()
        for code in regions.countries_in(name)
    ]
    return [r for r, _ in pairs], [c for _, c in pairs]


def _achieved(pairs: int) -> str:
    """An expression: the commitment ``c``'s metric per year of its period, a JSON object of
    year to value; its region's countries come from the (region, country) pairs in
    parameters ``$pairs`` and ``$pairs + 1``. Only the branch of ``c``'s metric runs."""
    within = (
        f"SELECT m.country FROM unnest(${pairs}::text[], ${pairs + 1}::text[]) m(region, country)"
        " WHERE m.region = lower(c.region)"
    )

    def sessions(value: str, metric: str, status: str) -> str:
        return f"""
            SELECT s.year, {value} AS value FROM session_fact s
            WHERE c.metric = '{metric}' AND s.year BETWEEN c.start_year AND c.end_year
              AND {status} AND (c.field IS NULL OR s.field = c.field)
              AND (c.region IS NULL OR s.venue_country IN ({within}))
            GROUP BY s.year"""

    def enrollments(value: str, metrics: str, condition: str) -> str:
        return f"""
            SELECT s.year, {value} AS value
            FROM enrollment_fact e JOIN session_fact s ON s.session_id = e.session_id
            WHERE c.metric IN {metrics} AND s.year BETWEEN c.start_year AND c.end_year
              AND {condition} AND (c.field IS NULL OR s.field = c.field)
              AND (c.region IS NULL OR e.country IN ({within}))
            GROUP BY s.year"""

    branches = [
        sessions("count(*)", "sessions_held", "s.status = 'completed'"),
        sessions(
            "coalesce(sum(s.capacity), 0)::bigint",
            "places_offered",
            "s.status NOT IN ('draft', 'cancelled')",
        ),
        # Places count enrollments; the trainee metrics count people (once a year).
        enrollments("count(*)", "('places_given')", f"e.status IN {ADMITTED_SQL}"),
        enrollments(
            f"count(DISTINCT {PERSON})",
            "('trainees_completed', 'trainees_accepted', 'trainees_enrolled')",
            "CASE c.metric WHEN 'trainees_completed' THEN e.status = 'completed'"
            f" WHEN 'trainees_accepted' THEN e.status IN {ADMITTED_SQL} ELSE true END",
        ),
    ]
    return (
        "(SELECT coalesce(json_object_agg(a.year, a.value), '{}'::json) FROM ("
        + " UNION ALL ".join(branches)
        + ") a)"
    )


def progress_rows(pairs: int, where: str = "true") -> str:
    """A query: the commitments matching ``where``, each with ``achieved`` (per year), by start
    year and name; the region pairs in parameters ``$pairs`` and ``$pairs + 1``."""
    return (
        f"SELECT c.*, {_achieved(pairs)} AS achieved FROM commitment c WHERE {where}"
        " ORDER BY c.start_year, c.name"
    )


def progress(row: dict[str, Any]) -> dict[str, Any]:
    """A decoded ``progress_rows`` row with its types back (JSON keeps neither)."""
    row["created_at"] = datetime.fromisoformat(row["created_at"]).astimezone(UTC)
    row["achieved"] = {int(year): value for year, value in row["achieved"].items()}
    return row


def region_pairs() -> list[list[str]]:
    """The arguments ``progress_rows`` takes for its region pairs."""
    return list(_regions())


async def every(conn: Rows) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every commitment with what it achieved per year, and the state it was read at (one
    statement)."""
    rows, state = await read(conn, json_rows(progress_rows(1)), *region_pairs())
    return [progress(r) for r in rows], state


async def one(conn: Rows, commitment_id: uuid.UUID) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """One commitment (None when there is none) with what it achieved per year, and the state
    it was read at (one statement)."""
    row, state = await read(
        conn,
        json_row(progress_rows(2, "c.commitment_id = $1")),
        commitment_id,
        *region_pairs(),
    )
    return (None if row is None else progress(row)), state
