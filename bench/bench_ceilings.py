"""Ceilings of this machine, measured in the same run as the platform's figures.

- ``ceiling.http.empty.*``: an empty FastAPI endpoint under the very uvicorn settings the
  services get (``harness.WORKERS`` workers, same flags): its maximum request rate (64
  clients back to back) and its latency at the fixed rates the targets name.
- ``ceiling.pg.row_outbox.cN``: bare asyncpg, one transaction per command inserting one row
  and one outbox row (a ~600-byte CloudEvents-sized payload), at N = 1, 8 and 32 connections
  (prepared statements, no ORM, no HTTP).
  The platform's writers do the same plus their own statements: no pre-ping on checkout
  (``tpp_plumbing.db.engine``), no NOTIFY (a commit wakes the relay in-process).

Other modules divide their figures by these (``Figure.ceiling``).
"""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg
from harness import Context, Figure, median_figure, scratch_database, serve
from loadgen import closed_loop, open_loop, request

NAME = "ceilings"
PAYLOAD = os.urandom(300).hex().encode()  # 600 bytes, like an encoded envelope

_SCHEMA = """
CREATE TABLE item (id uuid PRIMARY KEY, owner uuid NOT NULL, status text NOT NULL,
                   created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE outbox_message (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, event_id uuid NOT NULL UNIQUE,
    event_type text NOT NULL, topic text NOT NULL, key text NOT NULL, payload bytea NOT NULL,
    headers jsonb NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz);
CREATE INDEX ix_outbox_message_unpublished ON outbox_message (id) WHERE published_at IS NULL;
"""


async def pg_rate(dsn: str, connections: int, seconds: float) -> float:
    """Transactions per second, each inserting a row and an outbox row."""
    conns = [await asyncpg.connect(dsn) for _ in range(connections)]
    loop = asyncio.get_running_loop()
    done = 0

    async def worker(conn: asyncpg.Connection, deadline: float) -> None:
        nonlocal done
        # asyncpg prepares and caches both statements on first use.
        insert_item = "INSERT INTO item (id, owner, status) VALUES ($1, $2, $3)"
        insert_outbox = (
            "INSERT INTO outbox_message (event_id, event_type, topic, key, payload)"
            " VALUES ($1, $2, $3, $4, $5)"
        )
        while loop.time() < deadline:
            async with conn.transaction():
                owner = uuid.uuid4()
                await conn.execute(insert_item, uuid.uuid4(), owner, "accepted")
                await conn.execute(
                    insert_outbox, uuid.uuid4(), "item.accepted.v1", "items", str(owner), PAYLOAD
                )
            done += 1

    try:
        start = loop.time()
        await asyncio.gather(*(worker(c, start + seconds) for c in conns))
        return done / (loop.time() - start)
    finally:
        for conn in conns:
            await conn.close()


async def run(ctx: Context) -> list[Figure]:
    """Measure the ceilings."""
    repeats = 3
    seconds = 2.0 if ctx.quick else 3.0
    figures: list[Figure] = []
    async with scratch_database(ctx, "postgres", "_ceiling") as url:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(_SCHEMA)
        finally:
            await conn.close()
        for n in (1, 8, 32):
            runs = [await pg_rate(url, n, seconds) for _ in range(repeats)]
            figures.append(median_figure(f"ceiling.pg.row_outbox.c{n}", runs, "tx/s"))
    async with serve(
        ctx, "ceiling_app:app", {}, factory=False, label="ceiling", app_dir="bench"
    ) as server:

        def post(_: int) -> tuple[str, bytes]:
            return "post", request("POST", "/empty", b'{"trainee_id": "x"}')

        def get(_: int) -> tuple[str, bytes]:
            return "get", request("GET", "/empty?year=2031&field=new_energy")

        await closed_loop(server.port, post, concurrency=16, count=2000)  # warm-up
        maxima = []
        for _ in range(repeats):
            result = await closed_loop(server.port, post, concurrency=64, seconds=seconds)
            maxima.append(result.ok() / result.seconds)
        figures.append(median_figure("ceiling.http.empty.max", maxima, "req/s"))
        for rate, make in ((1000, post), (500, get)):
            p50s, p99s = [], []
            for _ in range(repeats):
                result = await open_loop(server.port, make, rate=rate, seconds=seconds)
                p50s.append(result.percentile(0.5))
                p99s.append(result.percentile(0.99))
            figures.append(median_figure(f"ceiling.http.empty.p50@{rate}", p50s, "ms"))
            figures.append(median_figure(f"ceiling.http.empty.p99@{rate}", p99s, "ms"))
    return figures
