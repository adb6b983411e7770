"""Raw command transactions (tpp_plumbing.db.writes) on a real PostgreSQL: commit, rollback,
the relay's wake-up, cancellation, and the transaction's span."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from opentelemetry import context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags
from tpp_contracts.examples import example
from tpp_contracts.registry import OrganizerCreatedV1
from tpp_plumbing.db.engine import asyncpg_dsn, is_database_outage, new_metadata
from tpp_plumbing.db.writes import CommandPool
from tpp_plumbing.messaging.outbox import Outbox, outbox_table
from tpp_plumbing.observability import telemetry
from tpp_testkit import ThrowawayDatabases

pytestmark = pytest.mark.integration

OUTBOX = outbox_table(new_metadata())


def registered() -> OrganizerCreatedV1:
    return example(OrganizerCreatedV1, organizer_id=uuid.uuid4())


@pytest.fixture
async def dsn(databases: ThrowawayDatabases) -> str:
    """A migrated registry database (it has an outbox table)."""
    return asyncpg_dsn(await databases.create("registry", f"_writes{uuid.uuid4().hex[:6]}"))


@contextlib.asynccontextmanager
async def waking_pool(dsn: str, max_size: int) -> AsyncIterator[tuple[CommandPool, list[int]]]:
    """A command pool, and the relay wake-ups it made (one item each), closed afterwards."""
    woken: list[int] = []
    pool = CommandPool(dsn, max_size=max_size, after_outbox_commit=lambda: woken.append(1))
    try:
        yield pool, woken
    finally:
        await pool.close()


async def outbox_rows(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT event_type FROM outbox_message ORDER BY id")
    finally:
        await conn.close()
    return [r["event_type"] for r in rows]


async def test_a_committed_command_keeps_its_events_in_order_and_wakes_the_relay_once(
    dsn: str,
) -> None:
    outbox = Outbox(OUTBOX, source="/tests")
    async with waking_pool(dsn, max_size=2) as (pool, woken):
        async with pool.transaction() as tx:
            await outbox.add(tx, [registered() for _ in range(3)])
            assert woken == []  # not before the commit
        assert woken == [1]
        assert await outbox_rows(dsn) == [OrganizerCreatedV1.type] * 3
        # A transaction that writes no event does not wake the relay.
        async with pool.transaction() as tx:
            await tx.fetchrow("SELECT 1")
        assert woken == [1]


async def test_statements_commit_each_on_its_own_and_events_written_so_wake_the_relay(
    dsn: str,
) -> None:
    outbox = Outbox(OUTBOX, source="/tests")
    async with waking_pool(dsn, max_size=2) as (pool, woken):
        rows = outbox.rows([registered(), registered()])

        async def written_then_refused() -> None:
            async with pool.statements() as tx:
                # The events and the command's state in one statement (here: the events).
                await tx.execute(outbox.insert_sql(1), *rows.params)
                tx.wrote_outbox = True
                assert await outbox_rows(dsn) == [OrganizerCreatedV1.type] * 2  # committed
                raise LookupError("what comes after a statement does not undo it")

        with pytest.raises(LookupError):
            await written_then_refused()
        assert await outbox_rows(dsn) == [OrganizerCreatedV1.type] * 2
        assert woken == []  # the block failed: the relay's polling publishes them
        async with pool.statements() as tx:
            await tx.execute(outbox.insert_sql(1), *outbox.rows([registered()]).params)
            tx.wrote_outbox = True
        assert woken == [1]
        assert await outbox_rows(dsn) == [OrganizerCreatedV1.type] * 3


async def test_a_failed_command_leaves_nothing_and_wakes_nobody(dsn: str) -> None:
    outbox = Outbox(OUTBOX, source="/tests")
    async with waking_pool(dsn, max_size=1) as (pool, woken):

        async def refused() -> None:
            async with pool.transaction() as tx:
                await outbox.add(tx, [registered()])
                raise LookupError("the command is refused after writing")

        with pytest.raises(LookupError):
            await refused()
        assert woken == []
        assert await outbox_rows(dsn) == []
        # The same (only) connection serves the next command, outside any transaction.
        async with pool.transaction() as tx:
            await outbox.add(tx, [registered()])
        assert await outbox_rows(dsn) == [OrganizerCreatedV1.type]


async def test_a_command_cancelled_while_waiting_on_a_lock_rolls_back(dsn: str) -> None:
    pool = CommandPool(dsn, max_size=1)
    outbox = Outbox(OUTBOX, source="/tests")
    holder = await asyncpg.connect(dsn)
    try:
        await holder.execute("CREATE TABLE gate (id int PRIMARY KEY)")
        await holder.execute("INSERT INTO gate VALUES (1)")
        tx_holder = holder.transaction()
        await tx_holder.start()
        await holder.execute("SELECT * FROM gate FOR UPDATE")

        async def blocked() -> None:
            async with pool.transaction() as tx:
                await outbox.add(tx, [registered()])
                await tx.execute("SELECT * FROM gate FOR UPDATE")  # waits on the holder

        task = asyncio.create_task(blocked())
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await tx_holder.rollback()
        # Its event was rolled back, and the pool's one connection works again.
        async with pool.transaction() as tx:
            row = await tx.fetchrow("SELECT count(*) AS n FROM outbox_message")
            assert row is not None
            assert row["n"] == 0
    finally:
        await holder.close()
        await pool.close()


async def divide_by_zero(pool: CommandPool) -> None:
    async with pool.transaction() as tx:
        await tx.execute("SELECT 1 / $1::int", 0)


async def test_a_recorded_command_has_one_client_span_with_its_statements(dsn: str) -> None:
    provider = telemetry.configure_tracing("plumbing-tests", 1.0)
    if not isinstance(provider, TracerProvider):
        pytest.skip("tracing is disabled (OTEL_SDK_DISABLED=true): no spans to look at")
    exporter = InMemorySpanExporter()
    processor = telemetry.export_to(exporter)
    assert processor is not None
    pool = CommandPool(dsn, max_size=1, database="registry")
    outbox = Outbox(OUTBOX, source="/tests")
    # A caller that asks for its request to be recorded (a sampled parent).
    parent = SpanContext(
        random.getrandbits(128) | 1,
        random.getrandbits(64) | 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    try:
        with telemetry.tracer().start_as_current_span("command") as command:
            async with pool.transaction() as tx:
                await tx.fetchrow("SELECT $1::int AS secret", 7)
                await outbox.add(tx, [registered()])
            with pytest.raises(asyncpg.DataError):
                await divide_by_zero(pool)
    finally:
        context.detach(token)
        await pool.close()
        processor.shutdown()
    transactions = [
        s
        for s in exporter.get_finished_spans()
        if s.kind == SpanKind.CLIENT
        and s.parent
        and s.parent.span_id == command.get_span_context().span_id
    ]
    committed, failed = transactions
    assert committed.name == "transaction COMMIT"
    assert [e.name for e in committed.events] == ["SELECT", "INSERT"]
    statements = [str((e.attributes or {})["db.statement"]) for e in committed.events]
    assert statements[1].startswith("INSERT INTO outbox_message")
    assert "7" not in statements[0]  # the SQL text, never the parameters
    assert (committed.attributes or {})["db.statement_count"] == 2
    assert failed.name == "transaction ROLLBACK"
    assert [e.name for e in failed.events] == ["SELECT failed"]
    assert failed.status.status_code == StatusCode.ERROR


async def test_an_unreachable_database_is_an_outage() -> None:
    pool = CommandPool("postgresql://nobody@127.0.0.1:9/nothing", max_size=1)

    async def command() -> None:
        async with pool.transaction():
            pass

    with pytest.raises(OSError, match=r"Connect call failed|refused") as raised:
        await command()
    assert is_database_outage(raised.value)
