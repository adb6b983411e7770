"""Rebuild every projection from the log, without an outage: ``python -m tpp_reporting.rebuild``.

1. Creates the projection tables afresh in the ``rebuild`` schema (same names, indexes and
   constraints as the live ones in ``public``).
2. Reads every registry and enrollment topic from its first offset up to the end offsets
   seen at the start (then once more up to the newer ends), applying the events with the
   live consumer's own code, in large batches, into the shadow tables. The API keeps
   serving the live tables meanwhile; the live consumer keeps applying new events to them.
3. Swaps in one transaction: it takes the swap lock (live batches wait at their start, so
   none is half-written), applies the few events the live consumer applied beyond the
   rebuild, moves the live tables to ``retired`` and the rebuilt ones to ``public``, and
   commits. Readers see the old tables or the new ones, never neither; the retired tables
   are then dropped. Commitments and positions are operator and consumer state: untouched.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import create_async_engine
from tpp_plumbing.db.engine import NAMING_CONVENTION, asyncpg_dsn
from tpp_plumbing.settings import KafkaSettings

from tpp_reporting.config import Settings, tune_gc
from tpp_reporting.consumers import SWAP_LOCK, decode_records, topics
from tpp_reporting.store import tables
from tpp_reporting.store.projection import (
    LIVE,
    Batch,
    Item,
    fold_unseen,
    project,
    record_inbox,
    write,
)

SHADOW = "rebuild"
RETIRED = "retired"


@dataclass(frozen=True, slots=True)
class RebuildResult:
    """What a rebuild read and applied, and how long it took."""

    records: int
    events_applied: int
    seconds: float
    swap_seconds: float


async def create_shadow_tables(url: str) -> None:
    """The projection tables, empty, in the shadow schema."""
    shadow = MetaData(naming_convention=NAMING_CONVENTION)
    for table in tables.PROJECTION_TABLES:
        table.to_metadata(shadow, schema=SHADOW)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {SHADOW} CASCADE")
            await conn.exec_driver_sql(f"CREATE SCHEMA {SHADOW}")
            await conn.run_sync(shadow.create_all)
            await conn.exec_driver_sql(
                f"INSERT INTO {SHADOW}.projection_state (id, version, events_applied)"
                " VALUES (1, 0, 0)"
            )
    finally:
        await engine.dispose()


class _Reader:
    """Reads every partition of the topics from its first offset, in order."""

    def __init__(self, kafka: KafkaSettings, names: list[str]) -> None:
        self._kafka = kafka
        self._names = names
        self.consumer = AIOKafkaConsumer(
            **kafka.client_options(),
            group_id=None,
            enable_auto_commit=False,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        self.partitions: list[TopicPartition] = []
        self.positions: dict[TopicPartition, int] = {}

    async def start(self) -> int:
        """Assign every partition at its beginning; returns how many records there are."""
        admin = AIOKafkaAdminClient(**self._kafka.client_options())
        await admin.start()
        try:
            described = await admin.describe_topics(self._names)
        finally:
            await admin.close()
        self.partitions = [
            TopicPartition(t["topic"], p["partition"])
            for t in described
            if not t.get("error_code")
            for p in t["partitions"]
        ]
        await self.consumer.start()
        if not self.partitions:
            return 0
        self.consumer.assign(self.partitions)
        starts = await self.consumer.beginning_offsets(self.partitions)
        for tp, offset in starts.items():
            self.consumer.seek(tp, offset)
            self.positions[tp] = offset
        ends = await self.ends()
        return sum(ends[tp] - starts[tp] for tp in self.partitions)

    async def ends(self) -> dict[TopicPartition, int]:
        """The current end offset of each partition."""
        if not self.partitions:
            return {}
        ends: dict[TopicPartition, int] = await self.consumer.end_offsets(self.partitions)
        return ends

    def behind(self, targets: dict[TopicPartition, int]) -> bool:
        """Whether some partition has not been read up to its target yet."""
        return any(self.positions.get(tp, 0) < end for tp, end in targets.items())

    async def read(self, max_records: int) -> list[Any]:
        """The next records (in order per partition), possibly none."""
        fetched = await self.consumer.getmany(timeout_ms=500, max_records=max_records)
        records: list[Any] = []
        for tp, batch in fetched.items():
            if batch:
                self.positions[tp] = batch[-1].offset + 1
                records.extend(batch)
        return records

    async def stop(self) -> None:
        await self.consumer.stop()


async def _apply(conn: asyncpg.Connection, records: list[Any], max_message_bytes: int) -> int:
    items, _, _ = decode_records(records, max_message_bytes=max_message_bytes)
    return await project(conn, SHADOW, items)


async def _write(conn: asyncpg.Connection, batch: Batch, new: list[Item]) -> None:
    async with conn.transaction():
        await record_inbox(conn, SHADOW, new)
        await write(conn, SHADOW, batch)


async def _secondary_indexes(conn: asyncpg.Connection, schema: str) -> list[tuple[str, str]]:
    """(name, DDL) of the projection tables' non-unique indexes in a schema."""
    rows = await conn.fetch(
        "SELECT c.relname AS name, pg_get_indexdef(c.oid) AS ddl, t.relname AS tbl"
        " FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid"
        " JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = $1 AND NOT x.indisunique",
        schema,
    )
    names = {t.name for t in tables.PROJECTION_TABLES}
    return [(r["name"], r["ddl"]) for r in rows if r["tbl"] in names]


async def _defer_indexes(conn: asyncpg.Connection) -> list[str]:
    """Drop the shadow tables' non-unique indexes; returns the DDL to build them after loading.

    An index built once over the loaded rows costs far less than one kept up to date through
    a million inserts. The DDL is the live tables' own (same names and definitions, so later
    migrations find what they expect), pointed at the shadow schema.
    """
    for name, _ in await _secondary_indexes(conn, SHADOW):
        await conn.execute(f"DROP INDEX {SHADOW}.{name}")
    return [
        ddl.replace(f" ON {LIVE}.", f" ON {SHADOW}.", 1)
        for _, ddl in await _secondary_indexes(conn, LIVE)
    ]


async def rebuild(
    settings: Settings, *, show_progress: bool = True, chunk: int = 20_000
) -> RebuildResult:
    """Rebuild every projection from offset 0 and swap the new tables in atomically."""
    started = time.perf_counter()
    tune_gc(settings.gc_gen0_threshold)
    limit = settings.consumer_max_message_bytes  # the live consumer's limit: same records skipped
    await create_shadow_tables(settings.database_url)
    names = [settings.kafka.topic(t) for t in topics()]
    reader = _Reader(settings.kafka, names)
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    applied = read = 0
    progress = Progress(
        TextColumn("[bold]rebuilding projections"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events"),
        TimeElapsedColumn(),
        disable=not show_progress,
    )
    try:
        total = await reader.start()
        indexes = await _defer_indexes(conn)
        seen: set[int] = set()
        writing: asyncio.Task[None] | None = None
        with progress:
            task = progress.add_task("rebuild", total=total)
            for _ in range(2):  # up to the ends seen at the start, then to the newer ends
                targets = await reader.ends()
                while reader.behind(targets):
                    records = await reader.read(chunk)
                    if not records:
                        continue
                    # Decode and fold this chunk while the previous one is being written.
                    items, _, _ = decode_records(records, max_message_bytes=limit)
                    batch, new = fold_unseen(items, seen)
                    if writing is not None:
                        await writing
                    writing = asyncio.create_task(_write(conn, batch, new))
                    applied += batch.count
                    read += len(records)
                    progress.update(task, completed=read, total=max(total, read))
            if writing is not None:
                await writing
            for ddl in indexes:
                await conn.execute(ddl)
            await conn.execute(
                f"ANALYZE {', '.join(f'{SHADOW}.{t.name}' for t in tables.PROJECTION_TABLES)}"
            )
            swap_started = time.perf_counter()
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", SWAP_LOCK)
                live = {
                    TopicPartition(r["topic"], r["partition"]): r["next_offset"]
                    for r in await conn.fetch(f"SELECT * FROM {LIVE}.consumer_position")
                    if r["topic"] in names
                }
                while reader.behind(live):
                    records = await reader.read(chunk)
                    applied += await _apply(conn, records, limit)
                    read += len(records)
                # The new tables' version goes on from the live ones': versions only grow, so
                # a report computed from the old tables is never taken for one of the new.
                await conn.execute(
                    f"UPDATE {SHADOW}.projection_state SET version ="
                    f" (SELECT version + 1 FROM {LIVE}.projection_state WHERE id = 1) WHERE id = 1"
                )
                await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {RETIRED}")
                for table in tables.PROJECTION_TABLES:
                    await conn.execute(f"ALTER TABLE {LIVE}.{table.name} SET SCHEMA {RETIRED}")
                    await conn.execute(f"ALTER TABLE {SHADOW}.{table.name} SET SCHEMA {LIVE}")
            swap_seconds = time.perf_counter() - swap_started
            progress.update(task, completed=read, total=read)
        await conn.execute(f"DROP SCHEMA IF EXISTS {RETIRED} CASCADE")
        await conn.execute(f"DROP SCHEMA IF EXISTS {SHADOW} CASCADE")
    finally:
        await reader.stop()
        await conn.close()
    return RebuildResult(read, applied, time.perf_counter() - started, swap_seconds)


def main(argv: list[str] | None = None) -> None:
    """Command line: rebuild the projections of the database in ``TPP_REPORTING_*``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--chunk", type=int, default=20_000, help="events per transaction")
    args = parser.parse_args(argv)
    result = asyncio.run(rebuild(Settings(), show_progress=not args.no_progress, chunk=args.chunk))
    print(
        f"rebuilt from {result.records:,} records ({result.events_applied:,} events applied)"
        f" in {result.seconds:.1f} s; swap {result.swap_seconds * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
