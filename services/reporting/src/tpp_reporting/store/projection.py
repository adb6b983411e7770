"""Reporting projections: a batch of events merged in Python, then one statement per table.

Events of one aggregate arrive in order (one key, one partition), so within a batch the last
event of an enrollment or organizer wins, and session events are guarded by the session's
version. Projections never depend on the order *between* aggregates or topics, so the live
consumer (partitions interleaved) and the rebuild (partition after partition) end with the
same rows. Every value written comes from the events; nothing reads the clock.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

import msgspec

from tpp_reporting import readers as ev


class Connection(Protocol):
    """The part of an asyncpg connection the projections use."""

    async def execute(self, query: str, *args: Any) -> str: ...

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...


#: PostgreSQL schema of the live projections; a rebuild writes into ``rebuild`` instead.
LIVE = "public"


class Item(msgspec.Struct, frozen=True, gc=False):
    """A decoded event and where it was read from (not tracked by the cyclic GC: cheap)."""

    topic: str
    partition: int
    offset: int
    event: ev.Event


@dataclass
class Batch:
    """The net effect of a batch of new events, per projected row."""

    # session_id -> [organizer_id, year, field, venue_country, overseas, capacity, status,
    #                version, title]
    sessions: dict[uuid.UUID, list[Any]] = field(default_factory=dict)
    # session_id -> [status, version, year, capacity, venue_country, overseas] (None: unchanged)
    session_changes: dict[uuid.UUID, list[Any]] = field(default_factory=dict)
    # enrollment_id -> (session_id, trainee_id, country, gender, profession, status, time)
    enrollments: dict[uuid.UUID, tuple[Any, ...]] = field(default_factory=dict)
    evaluations: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID, int]] = field(default_factory=dict)
    follow_ups: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID, date, str, str]] = field(
        default_factory=dict
    )
    organizers: dict[uuid.UUID, tuple[str, str, str, str | None]] = field(default_factory=dict)
    plans: dict[int, tuple[int, int | None, Decimal | None, str | None, int]] = field(
        default_factory=dict
    )
    erased: set[uuid.UUID] = field(default_factory=set)
    count: int = 0
    last_event_at: datetime | None = None

    def add(self, event: ev.Event) -> None:
        """Fold one event into the batch (events of one aggregate in log order)."""
        self.count += 1
        if self.last_event_at is None or event.time > self.last_event_at:
            self.last_event_at = event.time
        data = event.data
        status = ev.STATUS_OF.get(event.type)
        if status is not None:
            self.enrollments[data.enrollment_id] = (
                data.session_id,
                data.trainee_id,
                data.country,
                data.gender.value,
                data.profession.value,
                status.value,
                event.time,
            )
        elif isinstance(data, ev.SessionDetails):
            self._session_details(data)
        elif isinstance(data, ev.SessionChange):
            self._session_change(data)
        elif isinstance(data, ev.EvaluationSubmitted):
            self.evaluations[data.evaluation_id] = (data.enrollment_id, data.session_id, data.score)
        elif isinstance(data, ev.FollowUpRecorded):
            self.follow_ups[data.follow_up_id] = (
                data.enrollment_id,
                data.session_id,
                data.followed_up_on,
                data.channel.value,
                data.outcome.value,
            )
        elif isinstance(data, ev.OrganizerState):
            self.organizers[data.organizer_id] = (
                data.name,
                data.kind.value,
                data.country,
                data.province,
            )
        elif isinstance(data, ev.PlanSet):
            known = self.plans.get(data.year)
            if known is None or known[4] < data.revision:
                self.plans[data.year] = (
                    data.planned_sessions,
                    data.planned_overseas_sessions,
                    data.budget,
                    data.currency,
                    data.revision,
                )
        elif isinstance(data, ev.TraineeErased):
            self.erased.add(data.trainee_id)

    def _session_details(self, data: ev.SessionDetails) -> None:
        known = self.sessions.get(data.session_id)
        if known is not None and known[7] >= data.version:
            return
        self.sessions[data.session_id] = [
            data.organizer_id,
            data.year,
            data.field.value,
            data.venue_country,
            data.overseas,
            data.capacity,
            data.status.value,
            data.version,
            data.title,
        ]
        self.session_changes.pop(data.session_id, None)

    def _session_change(self, data: ev.SessionChange) -> None:
        full = self.sessions.get(data.session_id)
        if full is not None:
            if full[7] < data.version:
                full[6], full[7] = data.status.value, data.version
                if data.year is not None:
                    full[1] = data.year
                if data.capacity is not None:
                    full[5] = data.capacity
                if data.venue_country is not None:
                    full[3], full[4] = data.venue_country, data.overseas
            return
        change = self.session_changes.get(data.session_id)
        if change is None:
            change = self.session_changes[data.session_id] = [None, 0, None, None, None, None]
        if change[1] >= data.version:
            return
        change[0], change[1] = data.status.value, data.version
        if data.year is not None:
            change[2] = data.year
        if data.capacity is not None:
            change[3] = data.capacity
        if data.venue_country is not None:
            change[4], change[5] = data.venue_country, data.overseas


def _columns(rows: Iterable[Sequence[Any]], width: int) -> list[list[Any]]:
    columns: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


async def claim(conn: Connection, schema: str, items: Sequence[Item]) -> list[ev.Event]:
    """Record the items' event ids in the inbox; return the events new here, in order."""
    first: dict[uuid.UUID, Item] = {}
    for item in items:
        first.setdefault(item.event.id, item)
    if not first:
        return []
    ids, types, topics, partitions, offsets = _columns(
        ((i.event.id, i.event.type, i.topic, i.partition, i.offset) for i in first.values()), 5
    )
    rows = await conn.fetch(
        f'INSERT INTO {schema}.inbox_message (event_id, event_type, topic, partition, "offset")'
        " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::bigint[])"
        " ON CONFLICT DO NOTHING RETURNING event_id",
        ids,
        types,
        topics,
        partitions,
        offsets,
    )
    new = {row[0] for row in rows}
    return [i.event for i in first.values() if i.event.id in new]


def fold_unseen(items: Sequence[Item], seen: set[int]) -> tuple[Batch, list[Item]]:
    """Fold the items whose event ids are not in ``seen`` (which learns them), in order.

    The rebuild's form of ``claim`` + ``Batch.add``: it knows every id it applied, so it
    dedupes in memory and computes a batch while the previous one is being written. Ids are
    kept as integers: a million UUID objects would keep the garbage collector busy.
    """
    batch = Batch()
    new: list[Item] = []
    for item in items:
        event_id = item.event.id.int
        if event_id not in seen:
            seen.add(event_id)
            new.append(item)
            batch.add(item.event)
    return batch, new


async def record_inbox(conn: Connection, schema: str, items: Sequence[Item]) -> None:
    """Insert inbox rows of events known to be new (no conflict check needed)."""
    if not items:
        return
    await conn.execute(
        f'INSERT INTO {schema}.inbox_message (event_id, event_type, topic, partition, "offset")'
        " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::bigint[])",
        *_columns(((i.event.id, i.event.type, i.topic, i.partition, i.offset) for i in items), 5),
    )


async def write(conn: Connection, schema: str, batch: Batch) -> None:
    """Write a batch's net effect: at most one or two statements per table."""
    for sql, args in statements(schema, batch):
        await conn.execute(sql, *args)


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


async def project(conn: Connection, schema: str, items: Sequence[Item]) -> int:
    """Apply items (in log order) once each: inbox claim, then the batch's net effect."""
    batch = Batch()
    for event in await claim(conn, schema, items):
        batch.add(event)
    await write(conn, schema, batch)
    return batch.count


async def save_positions(conn: Connection, positions: dict[tuple[str, int], int]) -> None:
    """Record the next offset to read per partition (in the batch's transaction)."""
    if positions:
        await conn.execute(*_positions(positions))


def _positions(positions: dict[tuple[str, int], int]) -> tuple[Any, ...]:
    topics, partitions, offsets = _columns(((t, p, o) for (t, p), o in positions.items()), 3)
    return (
        "INSERT INTO consumer_position AS c (topic, partition, next_offset)"
        " SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[])"
        " ON CONFLICT (topic, partition) DO UPDATE SET"
        " next_offset = greatest(c.next_offset, excluded.next_offset)",
        topics,
        partitions,
        offsets,
    )


_PARAMETER = re.compile(r"\$(\d+)")


async def project_live(
    conn: Connection, items: Sequence[Item], positions: dict[tuple[str, int], int]
) -> int:
    """Apply items (in log order) once each and record the next offsets, in one statement
    when none of them was applied before (the usual case): the inbox claim, the batch's net
    effect, the projections' version and the positions, each a part of one ``WITH``, the
    writes guarded by "every event was new". Otherwise only the claim and the positions
    took effect, and the new events' net effect is written after it, as ``project`` does.

    A batch with an erasure is written statement by statement: the erasure rewrites the
    enrollments the same batch wrote, which one statement's parts could not see.
    """
    first: dict[uuid.UUID, Item] = {}
    for item in items:
        first.setdefault(item.event.id, item)
    batch = Batch()
    for item in first.values():
        batch.add(item.event)
    if not first or batch.erased:
        applied = await project(conn, LIVE, items)
        await save_positions(conn, positions)
        return applied
    parts: list[str] = []
    args: list[Any] = []

    def part(name: str, sql: str, values: Sequence[Any]) -> None:
        shift = len(args)
        parts.append(f"{name} AS ({_PARAMETER.sub(lambda m: f'${int(m[1]) + shift}', sql)})")
        args.extend(values)

    part(
        "claimed",
        f'INSERT INTO {LIVE}.inbox_message (event_id, event_type, topic, partition, "offset")'
        " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::bigint[])"
        " ON CONFLICT DO NOTHING RETURNING event_id",
        _columns(
            ((i.event.id, i.event.type, i.topic, i.partition, i.offset) for i in first.values()), 5
        ),
    )
    part("all_new", "SELECT count(*) = $1::bigint AS yes FROM claimed", [len(first)])
    for n, (sql, values) in enumerate(statements(LIVE, batch, guard="(SELECT yes FROM all_new)")):
        part(f"w{n}", sql, values)
    if positions:
        sql, *values = _positions(positions)
        part("positions", sql, values)
    rows = await conn.fetch(f"WITH {', '.join(parts)} SELECT event_id FROM claimed", *args)
    if len(rows) == len(first):
        return batch.count
    new = {row[0] for row in rows}
    batch = Batch()
    for item in first.values():
        if item.event.id in new:
            batch.add(item.event)
    await write(conn, LIVE, batch)
    return batch.count
