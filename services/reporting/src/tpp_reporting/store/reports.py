"""SQL over the projections: each function returns plain rows (dicts) for one report."""

from __future__ import annotations

import uuid
from typing import Any, Protocol


class Rows(Protocol):
    """Where the reports' statements run: a connection (in a snapshot) or the read pool (each
    statement its own snapshot)."""

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...


ADMITTED = ("accepted", "attended", "completed", "no_show")
_ADMITTED_SQL = "('accepted', 'attended', 'completed', 'no_show')"
# One person per trainee (an erased trainee's enrollments carry one surrogate id); rows erased
# by an older version without it (trainee_id NULL) count one person each until a rebuild.
_PERSON = "coalesce(e.trainee_id, e.enrollment_id)"

#: Breakdown dimensions: the SQL expression grouped on, and whether it is a session attribute.
DIMENSIONS: dict[str, tuple[str, bool]] = {
    "country": ("e.country", False),
    "region": ("e.country", False),  # grouped by country in SQL, folded into regions after
    "gender": ("e.gender", False),
    "profession": ("e.profession", False),
    "field": ("s.field", True),
    "organizer": ("s.organizer_id::text", True),
}


def _dicts(rows: list[Any]) -> list[dict[str, Any]]:
    return [dict(row) for row in rows]


#: The projections' version, events applied and newest event, as columns of ``p``.
_STATE = (
    "coalesce(p.version, 0) AS version, coalesce(p.events_applied, 0) AS events_applied,"
    " p.last_event_at"
)
#: The offsets applied, as three arrays of ``c`` (``_positions`` makes them a mapping).
_POSITIONS = (
    "LATERAL (SELECT array_agg(topic) AS topics, array_agg(partition) AS partitions,"
    " array_agg(next_offset) AS offsets FROM consumer_position) c"
)


def _positions(row: dict[str, Any]) -> dict[str, Any]:
    columns: list[list[Any]] = [row.pop(k) or [] for k in ("topics", "partitions", "offsets")]
    row["positions"] = {(t, p): o for t, p, o in zip(*columns, strict=True)}
    return row


async def state(conn: Rows, *, with_positions: bool = False) -> dict[str, Any]:
    """The projection's version, events applied, the time of the newest event, and a token
    that changes with the commitments (row count and newest row version); with
    ``with_positions``, also ``positions`` (what ``positions`` returns) in the same statement."""
    rows = await conn.fetch(
        f"SELECT {_STATE}, (SELECT count(*)::text || '.'"
        " || coalesce(max(xmin::text::bigint), 0)::text FROM commitment) AS settings"
        + (", c.topics, c.partitions, c.offsets" if with_positions else "")
        + " FROM (SELECT 1) one LEFT JOIN projection_state p ON p.id = 1"
        + (f", {_POSITIONS}" if with_positions else "")
    )
    found = dict(rows[0])
    return _positions(found) if with_positions else found


async def positions(conn: Rows) -> dict[tuple[str, int], int]:
    """The next offset the live consumer will apply, per (topic, partition)."""
    rows = await conn.fetch("SELECT topic, partition, next_offset FROM consumer_position")
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def known_years(conn: Rows) -> list[int]:
    """Every year some session or plan is in."""
    rows = await conn.fetch(
        "SELECT DISTINCT year FROM session_fact UNION SELECT year FROM plan_fact ORDER BY 1"
    )
    return [r["year"] for r in rows]


async def years(conn: Rows, wanted: list[int]) -> dict[int, dict[str, Any]]:
    """The per-year figures of each wanted year (zeros for a year without data)."""
    rows = await conn.fetch(
        f"""
        WITH s AS (
            SELECT year, count(*) AS sessions,
                   count(*) FILTER (WHERE status <> 'draft') AS published,
                   count(*) FILTER (WHERE status = 'completed') AS held,
                   count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
                   count(*) FILTER (WHERE overseas AND status <> 'draft') AS overseas,
                   count(*) FILTER (WHERE overseas AND status = 'completed') AS overseas_held,
                   count(*) FILTER (WHERE overseas AND status = 'cancelled')
                       AS overseas_cancelled
            FROM session_fact WHERE year = ANY($1::int[]) GROUP BY year),
        e AS (
            SELECT s.year, count(*) AS enrollments,
                   count(DISTINCT {_PERSON}) AS enrolled,
                   count(DISTINCT {_PERSON}) FILTER (WHERE e.status IN {_ADMITTED_SQL})
                       AS accepted,
                   count(DISTINCT {_PERSON}) FILTER (WHERE e.status = 'completed') AS completed,
                   count(DISTINCT e.country) FILTER (WHERE e.status IN {_ADMITTED_SQL})
                       AS countries
            FROM enrollment_fact e JOIN session_fact s ON s.session_id = e.session_id
            WHERE s.year = ANY($1::int[]) GROUP BY s.year)
        SELECT y.year, p.planned_sessions, p.planned_overseas_sessions,
               coalesce(s.sessions, 0) AS sessions, coalesce(s.published, 0) AS published,
               coalesce(s.held, 0) AS held, coalesce(s.cancelled, 0) AS cancelled,
               coalesce(s.overseas, 0) AS overseas,
               coalesce(s.overseas_held, 0) AS overseas_held,
               coalesce(s.overseas_cancelled, 0) AS overseas_cancelled,
               coalesce(e.enrollments, 0) AS enrollments, coalesce(e.enrolled, 0) AS enrolled,
               coalesce(e.accepted, 0) AS accepted, coalesce(e.completed, 0) AS completed,
               coalesce(e.countries, 0) AS countries
        FROM unnest($1::int[]) AS y(year)
        LEFT JOIN s ON s.year = y.year LEFT JOIN e ON e.year = y.year
        LEFT JOIN plan_fact p ON p.year = y.year
        """,
        wanted,
    )
    return {r["year"]: dict(r) for r in rows}


async def breakdown(conn: Rows, year: int, by: str) -> list[dict[str, Any]]:
    """Enrollment figures of a year grouped by a dimension (and sessions, for session ones)."""
    expression, per_session = DIMENSIONS[by]
    rows = _dicts(
        await conn.fetch(
            f"""
            SELECT {expression} AS key, count(*) AS enrollments,
                   count(DISTINCT {_PERSON}) AS enrolled,
                   count(DISTINCT {_PERSON}) FILTER (WHERE e.status IN {_ADMITTED_SQL})
                       AS accepted,
                   count(DISTINCT {_PERSON}) FILTER (WHERE e.status = 'completed') AS completed,
                   count(DISTINCT e.country) FILTER (WHERE e.status IN {_ADMITTED_SQL})
                       AS countries
            FROM enrollment_fact e JOIN session_fact s ON s.session_id = e.session_id
            WHERE s.year = $1 GROUP BY 1
            """,
            year,
        )
    )
    if not per_session:
        return rows
    sessions = await conn.fetch(
        f"""
        SELECT {expression} AS key, count(*) AS sessions,
               count(*) FILTER (WHERE s.status = 'completed') AS held,
               count(*) FILTER (WHERE s.status = 'cancelled') AS cancelled
        FROM session_fact s WHERE s.year = $1 GROUP BY 1
        """,
        year,
    )
    by_key = {row["key"]: row for row in rows}
    empty = {"enrollments": 0, "enrolled": 0, "accepted": 0, "completed": 0, "countries": 0}
    for row in sessions:
        target = by_key.setdefault(row["key"], {"key": row["key"], **empty})
        target.update(sessions=row["sessions"], held=row["held"], cancelled=row["cancelled"])
    return list(by_key.values())


async def organizer_names(conn: Rows, ids: list[str]) -> dict[str, str]:
    """Organizer names by id (from the registry's organizer events)."""
    rows = await conn.fetch(
        "SELECT organizer_id::text AS id, name FROM organizer_dim"
        " WHERE organizer_id = ANY($1::uuid[])",
        ids,
    )
    return {r["id"]: r["name"] for r in rows}


def _counts_of(session_id: str) -> str:
    """LATERAL subqueries ``e`` and ``v``: the enrollment counts and evaluations of the session
    whose id is the expression ``session_id``."""
    return f"""
        LATERAL (
            SELECT count(*) AS enrolled,
                   count(*) FILTER (WHERE status IN {_ADMITTED_SQL}) AS accepted,
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
) -> list[dict[str, Any]]:
    """Per-session figures, filtered, ordered by year then title."""
    return _dicts(
        await conn.fetch(
            _SESSION_FIGURES
            + """
            WHERE ($1::int IS NULL OR s.year = $1) AND ($2::text IS NULL OR s.field = $2)
              AND ($3::uuid IS NULL OR s.organizer_id = $3)
              AND ($4::text IS NULL OR s.status = $4)
            ORDER BY s.year, s.title, s.session_id LIMIT $5 OFFSET $6
            """,
            year,
            field,
            organizer_id,
            status,
            limit,
            offset,
        )
    )


_SESSION_REPORT = f"""
    SELECT {_STATE}, c.topics, c.partitions, c.offsets,
           s.session_id IS NOT NULL AS known, q.session_id, s.title, s.year, s.field,
           s.organizer_id, o.name AS organizer, s.venue_country, s.overseas, s.capacity,
           s.status, e.enrolled, e.accepted, e.waitlisted, e.completed, e.no_show,
           v.evaluations, v.score_total
    FROM (SELECT $1::uuid AS session_id) q
    LEFT JOIN projection_state p ON p.id = 1
    LEFT JOIN session_fact s ON s.session_id = q.session_id
    LEFT JOIN organizer_dim o ON o.organizer_id = s.organizer_id
    CROSS JOIN {_counts_of("q.session_id")}
    CROSS JOIN {_POSITIONS}
"""


async def session_report(conn: Rows, session_id: uuid.UUID) -> dict[str, Any]:
    """One session's figures with the projections' state and positions, in one statement (one
    snapshot, one round trip); ``known`` is false until an event about the session arrived
    (its enrollment counts are there even before)."""
    rows = await conn.fetch(_SESSION_REPORT, session_id)
    return _positions(dict(rows[0]))


async def evaluations(conn: Rows, year: int) -> dict[str, Any]:
    """A year's evaluation count and score total."""
    rows = await conn.fetch(
        "SELECT count(*) AS evaluations, sum(v.score) AS score_total FROM evaluation_fact v"
        " JOIN session_fact s ON s.session_id = v.session_id WHERE s.year = $1",
        year,
    )
    return dict(rows[0])


async def follow_ups(conn: Rows, year: int) -> dict[str, Any]:
    """Completed enrollments of a year, how many have a follow-up, and follow-up outcomes."""
    coverage = await conn.fetch(
        """
        SELECT count(*) AS completed,
               count(*) FILTER (WHERE EXISTS (
                   SELECT 1 FROM follow_up_fact f WHERE f.enrollment_id = e.enrollment_id))
                   AS followed_up
        FROM enrollment_fact e JOIN session_fact s ON s.session_id = e.session_id
        WHERE s.year = $1 AND e.status = 'completed'
        """,
        year,
    )
    outcomes = await conn.fetch(
        "SELECT f.outcome, count(*) AS follow_ups, count(DISTINCT f.enrollment_id) AS trainees"
        " FROM follow_up_fact f JOIN session_fact s ON s.session_id = f.session_id"
        " WHERE s.year = $1 GROUP BY f.outcome ORDER BY 2 DESC, 1",
        year,
    )
    return {**dict(coverage[0]), "outcomes": _dicts(outcomes)}


async def commitment_achieved(
    conn: Rows,
    *,
    metric: str,
    start_year: int,
    end_year: int,
    field: str | None,
    countries: list[str] | None,
) -> dict[int, int]:
    """Per year of the period, the commitment's metric (field and countries filter it)."""
    if metric == "sessions_held":
        rows = await conn.fetch(
            """
            SELECT year, count(*) AS value FROM session_fact s
            WHERE s.year BETWEEN $1 AND $2 AND s.status = 'completed'
              AND ($3::text IS NULL OR s.field = $3)
              AND ($4::text[] IS NULL OR s.venue_country = ANY($4::text[]))
            GROUP BY year
            """,
            start_year,
            end_year,
            field,
            countries,
        )
    elif metric == "places_offered":
        rows = await conn.fetch(
            """
            SELECT year, sum(capacity)::bigint AS value FROM session_fact s
            WHERE s.year BETWEEN $1 AND $2 AND s.status NOT IN ('draft', 'cancelled')
              AND ($3::text IS NULL OR s.field = $3)
              AND ($4::text[] IS NULL OR s.venue_country = ANY($4::text[]))
            GROUP BY year
            """,
            start_year,
            end_year,
            field,
            countries,
        )
    else:
        condition = {
            "trainees_completed": "e.status = 'completed'",
            "trainees_accepted": f"e.status IN {_ADMITTED_SQL}",
            "trainees_enrolled": "true",
            "places_given": f"e.status IN {_ADMITTED_SQL}",
        }[metric]
        # Places count enrollments; the trainee metrics count people (once a year).
        counted = "count(*)" if metric == "places_given" else f"count(DISTINCT {_PERSON})"
        rows = await conn.fetch(
            f"""
            SELECT s.year, {counted} AS value
            FROM enrollment_fact e JOIN session_fact s ON s.session_id = e.session_id
            WHERE s.year BETWEEN $1 AND $2 AND {condition}
              AND ($3::text IS NULL OR s.field = $3)
              AND ($4::text[] IS NULL OR e.country = ANY($4::text[]))
            GROUP BY s.year
            """,
            start_year,
            end_year,
            field,
            countries,
        )
    return {r["year"]: r["value"] for r in rows}
