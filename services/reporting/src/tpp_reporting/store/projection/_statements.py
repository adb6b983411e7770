"""A batch's net effect as SQL: at most one or two set-based statements per table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tpp_reporting.store.projection._batch import Batch


def _columns(rows: Iterable[Sequence[Any]], width: int) -> list[list[Any]]:
    columns: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def statements(schema: str, batch: Batch, *, guard: str = "") -> list[tuple[str, list[Any]]]:
    """A batch's net effect as statements in the order they run, each numbering its
    parameters from ``$1``; ``guard``: a condition each of them also requires."""
    s = schema
    where = f" WHERE {guard}" if guard else ""  # after an INSERT's SELECT ... FROM ...
    also = f" AND {guard}" if guard else ""  # after an UPDATE's own WHERE
    out: list[tuple[str, list[Any]]] = []
    if batch.organizers:
        out.append(
            _upsert(
                f"{s}.organizer_dim",
                ("organizer_id", "uuid"),
                [("name", "text"), ("kind", "text"), ("country", "text"), ("province", "text")],
                batch.organizers,
                where,
            )
        )
    if batch.plans:
        plan = [("planned_sessions", "int"), ("planned_overseas_sessions", "int")]
        plan += [("budget", "numeric"), ("currency", "text"), ("revision", "int")]
        out.append(
            _upsert(f"{s}.plan_fact", ("year", "int"), plan, batch.plans, where, newer="revision")
        )
    if batch.sessions:
        session = [("organizer_id", "uuid"), ("year", "int"), ("field", "text")]
        session += [("venue_country", "text"), ("overseas", "bool"), ("capacity", "int")]
        session += [("status", "text"), ("version", "int"), ("title", "text")]
        out.append(
            _upsert(
                f"{s}.session_fact",
                ("session_id", "uuid"),
                session,
                batch.sessions,
                where,
                newer="version",
            )
        )
    if batch.session_changes:
        out.append(
            (
                f"UPDATE {s}.session_fact f SET status = u.status, version = u.version,"
                " year = coalesce(u.year, f.year), capacity = coalesce(u.capacity, f.capacity),"
                " venue_country = coalesce(u.venue_country, f.venue_country),"
                " overseas = coalesce(u.overseas, f.overseas)"
                " FROM unnest($1::uuid[], $2::text[], $3::int[], $4::int[], $5::int[],"
                " $6::text[], $7::bool[]) AS u(session_id, status, version, year, capacity,"
                " venue_country, overseas) WHERE f.session_id = u.session_id"
                f" AND f.version < u.version{also}",
                [list(batch.session_changes), *_columns(batch.session_changes.values(), 6)],
            )
        )
    if batch.enrollments:
        # A trainee erased earlier (maybe in another partition) is never linked again: the
        # enrollment gets the erased trainee's surrogate, as the erasure gives the others.
        out.append(
            (
                f"INSERT INTO {s}.enrollment_fact AS f (enrollment_id, session_id, trainee_id,"
                " country, gender, profession, status, updated_at)"
                " SELECT u.enrollment_id, u.session_id, CASE WHEN t.trainee_id IS NULL"
                f" THEN u.trainee_id ELSE {_surrogate('u.trainee_id')} END,"
                " u.country, u.gender, u.profession, u.status, u.updated_at"
                " FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],"
                " $6::text[], $7::text[], $8::timestamptz[]) AS u(enrollment_id, session_id,"
                " trainee_id, country, gender, profession, status, updated_at)"
                f" LEFT JOIN {s}.trainee_erased t ON t.trainee_id = u.trainee_id{where}"
                " ON CONFLICT (enrollment_id) DO UPDATE SET country = excluded.country,"
                " gender = excluded.gender, profession = excluded.profession,"
                " status = excluded.status, updated_at = excluded.updated_at",
                [list(batch.enrollments), *_columns(batch.enrollments.values(), 7)],
            )
        )
    if batch.evaluations:
        out.append(
            (
                f"INSERT INTO {s}.evaluation_fact (evaluation_id, enrollment_id, session_id,"
                " score) SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[],"
                f" $4::smallint[]){where} ON CONFLICT (evaluation_id) DO NOTHING",
                [list(batch.evaluations), *_columns(batch.evaluations.values(), 3)],
            )
        )
    if batch.follow_ups:
        out.append(
            (
                f"INSERT INTO {s}.follow_up_fact (follow_up_id, enrollment_id, session_id,"
                " followed_up_on, channel, outcome) SELECT * FROM unnest($1::uuid[],"
                f" $2::uuid[], $3::uuid[], $4::date[], $5::text[], $6::text[]){where}"
                " ON CONFLICT (follow_up_id) DO NOTHING",
                [list(batch.follow_ups), *_columns(batch.follow_ups.values(), 5)],
            )
        )
    if batch.erased:
        erased = list(batch.erased)
        out.append(
            (
                f"INSERT INTO {s}.trainee_erased (trainee_id) SELECT unnest($1::uuid[]){where}"
                " ON CONFLICT DO NOTHING",
                [erased],
            )
        )
        # Reads the enrollments written above: never in one statement with them (fused).
        out.append(
            (
                f"UPDATE {s}.enrollment_fact SET trainee_id = {_surrogate('trainee_id')}"
                f" WHERE trainee_id = ANY($1::uuid[]){also}",
                [erased],
            )
        )
    if batch.count:
        out.append(
            (
                f"UPDATE {s}.projection_state SET version = version + 1,"
                " events_applied = events_applied + $1,"
                f" last_event_at = greatest(last_event_at, $2) WHERE id = 1{also}",
                [batch.count, batch.last_event_at],
            )
        )
    return out


def _upsert(
    table: str,
    key: tuple[str, str],
    columns: Sequence[tuple[str, str]],
    rows: Mapping[Any, Sequence[Any]],
    where: str,
    *,
    newer: str | None = None,
) -> tuple[str, list[Any]]:
    """Insert ``rows`` (key: the other columns' values) or overwrite the rows they update,
    only with a greater ``newer`` column when given; ``where``: after the SELECT's FROM."""
    names = ", ".join(name for name, _ in (key, *columns))
    arrays = ", ".join(f"${n}::{kind}[]" for n, (_, kind) in enumerate((key, *columns), 1))
    sets = ", ".join(f"{name} = excluded.{name}" for name, _ in columns)
    only = f" WHERE t.{newer} < excluded.{newer}" if newer else ""
    sql = (
        f"INSERT INTO {table} AS t ({names}) SELECT * FROM unnest({arrays}){where}"
        f" ON CONFLICT ({key[0]}) DO UPDATE SET {sets}{only}"
    )
    return sql, [list(rows), *_columns(rows.values(), len(columns))]


def _surrogate(trainee_id: str) -> str:
    """SQL of the id an erased trainee's enrollments carry instead of the trainee's.

    The same for all of the trainee's enrollments (distinct people stay counted once, so
    every figure stays as it was), not the trainee id (the projection no longer links the
    enrollments to the id other systems knew the person by), and derived from the events
    only (a rebuild gives the same rows).
    """
    return f"CAST(md5('tpp-erased:' || CAST({trainee_id} AS text)) AS uuid)"
