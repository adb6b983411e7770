"""The reports' queries: each report read with the state it was read at, in one statement.

Each function returns the report's plain rows (dicts) and the state (``sql.read``).
"""

from __future__ import annotations

import uuid
from typing import Any

from tpp_reporting.store import commitments
from tpp_reporting.store.sql import (
    ADMITTED_SQL,
    PERSON,
    POSITIONS,
    STATE,
    Rows,
    json_row,
    json_rows,
    read,
    with_positions,
)

#: Breakdown dimensions: the SQL expression grouped on, and whether it is a session attribute.
DIMENSIONS: dict[str, tuple[str, bool]] = {
    "country": ("e.country", False),
    "region": ("e.country", False),  # grouped by country in SQL, folded into regions after
    "gender": ("e.gender", False),
    "profession": ("e.profession", False),
    "field": ("s.field", True),
    "organizer": ("s.organizer_id::text", True),
}

State = dict[str, Any]


def _years(wanted: str) -> str:
    """A query: the per-year figures of each year ``wanted`` (a query of ``year``) gives,
    zeros for a year without data."""
    return f"""
        WITH y AS ({wanted}),
        s AS (
            SELECT year, count(*) AS sessions,
                   count(*) FILTER (WHERE status <> 'draft') AS published,
                   count(*) FILTER (WHERE status = 'completed') AS held,
                   count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
                   count(*) FILTER (WHERE overseas AND status <> 'draft') AS overseas,
                   count(*) FILTER (WHERE overseas AND status = 'completed') AS overseas_held,
                   count(*) FILTER (WHERE overseas AND status = 'cancelled')
                       AS overseas_cancelled
            FROM session_fact WHERE year IN (SELECT year FROM y) GROUP BY year),
        e AS (
            SELECT s.year, count(*) AS enrollments,
                   count(DISTINCT {PERSON}) AS enrolled,
                   count(DISTINCT {PERSON}) FILTER (WHERE e.status IN {ADMITTED_SQL})
                       AS accepted,
                   count(DISTINCT {PERSON}) FILTER (WHERE e.status = 'completed') AS completed,
                   count(DISTINCT e.country) FILTER (WHERE e.status IN {ADMITTED_SQL})
                       AS countries
            FROM enrollment_fact e JOIN session_fact s ON s.session_id = e.session_id
            WHERE s.year IN (SELECT year FROM y) GROUP BY s.year)
        SELECT y.year, p.planned_sessions, p.planned_overseas_sessions,
               coalesce(s.sessions, 0) AS sessions, coalesce(s.published, 0) AS published,
               coalesce(s.held, 0) AS held, coalesce(s.cancelled, 0) AS cancelled,
               coalesce(s.overseas, 0) AS overseas,
               coalesce(s.overseas_held, 0) AS overseas_held,
               coalesce(s.overseas_cancelled, 0) AS overseas_cancelled,
               coalesce(e.enrollments, 0) AS enrollments, coalesce(e.enrolled, 0) AS enrolled,
               coalesce(e.accepted, 0) AS accepted, coalesce(e.completed, 0) AS completed,
               coalesce(e.countries, 0) AS countries
        FROM (SELECT DISTINCT year FROM y) y
        LEFT JOIN s ON s.year = y.year LEFT JOIN e ON e.year = y.year
        LEFT JOIN plan_fact p ON p.year = y.year
    """


def _by_year(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {r["year"]: r for r in rows}


async def year(conn: Rows, wanted: int) -> tuple[dict[int, dict[str, Any]], State]:
    """The figures of a year and of the year before (for its growth)."""
    rows, state = await read(
        conn, json_rows(_years("SELECT unnest(ARRAY[$1::int - 1, $1::int]) AS year")), wanted
    )
    return _by_year(rows), state


#: The years some session or plan is in, of those from $1 to $2 (either may be null), the
#: first 200.
_KNOWN = """
    SELECT year FROM (SELECT year FROM session_fact UNION SELECT year FROM plan_fact) k
    WHERE ($1::int IS NULL OR year >= $1) AND ($2::int IS NULL OR year <= $2)
    ORDER BY year LIMIT 200
"""


async def years(
    conn: Rows, first: int | None, last: int | None
) -> tuple[list[int], dict[int, dict[str, Any]], State]:
    """The years with a session or a plan (of those from ``first`` to ``last`` when given, the
    first 200), and the figures of each and of the year before each."""
    data, state = await read(
        conn,
        f"""WITH w AS ({_KNOWN}) SELECT json_build_object(
            'wanted', (SELECT coalesce(json_agg(year ORDER BY year), '[]'::json) FROM w),
            'rows', {json_rows(_years("SELECT year FROM w UNION SELECT year - 1 FROM w"))})""",
        first,
        last,
    )
    return data["wanted"], _by_year(data["rows"]), state


def _breakdown(by: str) -> str:
    """A query: enrollment figures of the year $1 grouped by a dimension (and its sessions,
    for a session attribute; and the organizer's ``name``, by organizer)."""
    expression, per_session = DIMENSIONS[by]
    enrolled = f"""
        SELECT {expression} AS key, count(*) AS enrollments,
               count(DISTINCT {PERSON}) AS enrolled,
               count(DISTINCT {PERSON}) FILTER (WHERE e.status IN {ADMITTED_SQL})
                   AS accepted,
               count(DISTINCT {PERSON}) FILTER (WHERE e.status = 'completed') AS completed,
               count(DISTINCT e.country) FILTER (WHERE e.status IN {ADMITTED_SQL})
                   AS countries
        FROM enrollment_fact e JOIN session_fact s ON s.session_id = e.session_id
        WHERE s.year = $1 GROUP BY 1
    """
    if not per_session:
        return enrolled
    named = by == "organizer"
    return f"""
        WITH en AS ({enrolled}), se AS (
            SELECT {expression} AS key, count(*) AS sessions,
                   count(*) FILTER (WHERE s.status = 'completed') AS held,
                   count(*) FILTER (WHERE s.status = 'cancelled') AS cancelled
            FROM session_fact s WHERE s.year = $1 GROUP BY 1)
        SELECT coalesce(en.key, se.key) AS key, coalesce(en.enrollments, 0) AS enrollments,
               coalesce(en.enrolled, 0) AS enrolled, coalesce(en.accepted, 0) AS accepted,
               coalesce(en.completed, 0) AS completed, coalesce(en.countries, 0) AS countries,
               se.sessions, se.held, se.cancelled{", o.name" if named else ""}
        FROM en FULL JOIN se ON se.key = en.key
        {
        "LEFT JOIN organizer_dim o ON o.organizer_id::text = coalesce(en.key, se.key)"
        if named
        else ""
    }
    """


async def breakdown(conn: Rows, year: int, by: str) -> tuple[list[dict[str, Any]], State]:
    """Enrollment figures of a year grouped by a dimension (see ``_breakdown``)."""
    rows, state = await read(conn, json_rows(_breakdown(by)), year)
    return rows, state


def _counts_of(session_id: str) -> str:
    """LATERAL subqueries ``e`` and ``v``: the enrollment counts and evaluations of the session
    whose id is the expression ``session_id``."""
    return f"""
        LATERAL (
            SELECT count(*) AS enrolled,
                   count(*) FILTER (WHERE status IN {ADMITTED_SQL}) AS accepted,
                   count(*) FILTER (WHERE status = 'waitlisted') AS waitlisted,
                   count(*) FILTER (WHERE status = 'completed') AS completed,
                   count(*) FILTER (WHERE status = 'no_show') AS no_show
            FROM enrollment_fact WHERE session_id = {session_id}) e
        CROSS JOIN LATERAL (
            SELECT count(*) AS evaluations, sum(score) AS score_total
            FROM evaluation_fact WHERE session_id = {session_id}) v
    """


_SESSION_FIGURES = f"""
    SELECT s.session_id, s.title, s.year, s.field, s.organizer_id, o.name AS organizer,
           s.venue_country, s.overseas, s.capacity, s.status,
           coalesce(e.enrolled, 0) AS enrolled, coalesce(e.accepted, 0) AS accepted,
           coalesce(e.waitlisted, 0) AS waitlisted, coalesce(e.completed, 0) AS completed,
           coalesce(e.no_show, 0) AS no_show,
           coalesce(v.evaluations, 0) AS evaluations, v.score_total
    FROM session_fact s
    LEFT JOIN organizer_dim o ON o.organizer_id = s.organizer_id
    CROSS JOIN {_counts_of("s.session_id")}
"""


async def sessions(
    conn: Rows,
    *,
    year: int | None,
    field: str | None,
    organizer_id: uuid.UUID | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], State]:
    """Per-session figures, filtered, ordered by year then title."""
    query = (
        _SESSION_FIGURES
        + """
        WHERE ($1::int IS NULL OR s.year = $1) AND ($2::text IS NULL OR s.field = $2)
          AND ($3::uuid IS NULL OR s.organizer_id = $3)
          AND ($4::text IS NULL OR s.status = $4)
        ORDER BY s.year, s.title, s.session_id LIMIT $5 OFFSET $6
        """
    )
    rows, state = await read(
        conn, json_rows(query), year, field, organizer_id, status, limit, offset
    )
    return rows, state


_SESSION_REPORT = f"""
    SELECT {STATE}, c.topics, c.partitions, c.offsets,
           s.session_id IS NOT NULL AS known, q.session_id, s.title, s.year, s.field,
           s.organizer_id, o.name AS organizer, s.venue_country, s.overseas, s.capacity,
           s.status, e.enrolled, e.accepted, e.waitlisted, e.completed, e.no_show,
           v.evaluations, v.score_total
    FROM (SELECT $1::uuid AS session_id) q
    LEFT JOIN projection_state p ON p.id = 1
    LEFT JOIN session_fact s ON s.session_id = q.session_id
    LEFT JOIN organizer_dim o ON o.organizer_id = s.organizer_id
    CROSS JOIN {_counts_of("q.session_id")}
    CROSS JOIN {POSITIONS}
"""


async def session_report(conn: Rows, session_id: uuid.UUID) -> dict[str, Any]:
    """One session's figures with the projections' state and positions, in one statement (one
    snapshot, one round trip); ``known`` is false until an event about the session arrived
    (its enrollment counts are there even before)."""
    rows = await conn.fetch(_SESSION_REPORT, session_id)
    return with_positions(dict(rows[0]))


#: An expression: the year $1's evaluation count and score total, as a JSON object.
_EVALUATIONS = json_row(
    "SELECT count(*) AS evaluations, sum(v.score) AS score_total FROM evaluation_fact v"
    " JOIN session_fact s ON s.session_id = v.session_id WHERE s.year = $1"
)
_COVERAGE = json_row(
    """
    SELECT count(*) AS completed,
           count(*) FILTER (WHERE EXISTS (
               SELECT 1 FROM follow_up_fact f WHERE f.enrollment_id = e.enrollment_id))
               AS followed_up
    FROM enrollment_fact e JOIN session_fact s ON s.session_id = e.session_id
    WHERE s.year = $1 AND e.status = 'completed'
    """
)
_OUTCOMES = json_rows(
    """
    SELECT f.outcome, count(*) AS follow_ups, count(DISTINCT f.enrollment_id) AS trainees
    FROM follow_up_fact f JOIN session_fact s ON s.session_id = f.session_id
    WHERE s.year = $1 GROUP BY f.outcome ORDER BY 2 DESC, 1
    """
)
#: An expression: the year $1's completed enrollments, how many have a follow-up, and the
#: follow-up outcomes, as a JSON object.
_FOLLOW_UPS = f"json_build_object('coverage', {_COVERAGE}, 'outcomes', {_OUTCOMES})"


def _follow_ups(data: dict[str, Any]) -> dict[str, Any]:
    return {**data["coverage"], "outcomes": data["outcomes"]}


async def follow_ups(conn: Rows, year: int) -> tuple[dict[str, Any], State]:
    """Completed enrollments of a year, how many have a follow-up, and follow-up outcomes."""
    data, state = await read(conn, _FOLLOW_UPS, year)
    return _follow_ups(data), state


_REVIEW = f"""json_build_object(
    'years', {json_rows(_years("SELECT unnest(ARRAY[$1::int - 1, $1::int, $1::int + 1]) AS year"))},
    'countries', {json_rows(_breakdown("country"))},
    'fields', {json_rows(_breakdown("field"))},
    'organizers', {json_rows(_breakdown("organizer"))},
    'evaluation', {_EVALUATIONS},
    'follow_ups', {_FOLLOW_UPS},
    'commitments', {json_rows(commitments.progress_rows(2))})"""


async def annual_review(conn: Rows, year: int) -> tuple[dict[str, Any], State]:
    """Everything a year's review shows: ``years`` (the year, the one before and the one
    after), the year by ``countries``, ``fields`` and ``organizers``, its ``evaluation``,
    its ``follow_ups``, and every commitment with what it achieved."""
    data, state = await read(conn, _REVIEW, year, *commitments.region_pairs())
    data["years"] = _by_year(data["years"])
    data["follow_ups"] = _follow_ups(data["follow_ups"])
    data["commitments"] = [commitments.progress(c) for c in data["commitments"]]
    return data, state
