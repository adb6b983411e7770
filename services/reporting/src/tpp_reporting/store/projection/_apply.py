"""Batches applied: the inbox claim, the net effect and the offsets, live or in a rebuild."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from tpp_reporting import readers as ev
from tpp_reporting.store.projection._batch import Batch, Item
from tpp_reporting.store.projection._statements import _columns, statements


class Connection(Protocol):
    """The part of an asyncpg connection the projections use."""

    async def execute(self, query: str, *args: Any) -> str: ...

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...


#: PostgreSQL schema of the live projections; a rebuild writes into ``rebuild`` instead.
LIVE = "public"


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
