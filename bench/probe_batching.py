"""PostgreSQL's CPU per row when K rows are written by one statement (a tool, not part of make
bench): what combining concurrent enrollments' writes could save.

    set -a; . deploy/local.env; set +a
    uv run python bench/probe_batching.py            # KS=1,4,8,16 N=48000

Each row is what the enrollment's optimistic write does at its core: a session row's update,
an enrollment row (three indexes and a unique pair) and an outbox row, chained in a CTE. A
statement carries K such chains for K different sessions; 16 connections send statements
back to back. Prints rows/s and PostgreSQL's CPU per row (all ``postgres`` processes, from
``/proc``), each K twice, in scratch tables of the admin database dropped at the end.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
import uuid

import asyncpg

CONNECTIONS = 16
SESSIONS = 400
SETUP = """
DROP TABLE IF EXISTS probe_session, probe_enrollment, probe_outbox;
CREATE TABLE probe_session (id uuid PRIMARY KEY, version bigint NOT NULL DEFAULT 0,
  accepted int NOT NULL DEFAULT 0);
CREATE TABLE probe_enrollment (id uuid PRIMARY KEY, session_id uuid NOT NULL,
  trainee_id uuid NOT NULL, status text NOT NULL, country text NOT NULL,
  created_at timestamptz DEFAULT now(), UNIQUE (session_id, trainee_id));
CREATE INDEX ON probe_enrollment (session_id, status);
CREATE INDEX ON probe_enrollment (trainee_id);
CREATE INDEX ON probe_enrollment (session_id, country, status);
CREATE TABLE probe_outbox (id bigserial PRIMARY KEY, event_id uuid NOT NULL, topic text,
  key text, payload jsonb, headers jsonb, created_at timestamptz DEFAULT now(),
  published_at timestamptz);
CREATE INDEX ON probe_outbox (id) WHERE published_at IS NULL;
"""


def postgres_cpu_s() -> float:
    """CPU seconds used so far by every process named postgres."""
    ticks = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        if "(postgres)" in text:
            fields = text.rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def statement(k: int) -> str:
    """K chains of update, insert and outbox insert; five parameters each."""
    chains = []
    for i in range(k):
        p = [f"${5 * i + n}" for n in range(1, 6)]
        chains.append(
            f"m{i} AS (UPDATE probe_session SET version = version + 1, accepted = accepted + 1"
            f" WHERE id = {p[0]} RETURNING id),"
            f" a{i} AS (INSERT INTO probe_enrollment (id, session_id, trainee_id, status, country)"
            f" SELECT {p[1]}, {p[0]}, {p[2]}, 'accepted', 'KE' FROM m{i} RETURNING id),"
            f" o{i} AS (INSERT INTO probe_outbox (event_id, topic, key, payload, headers)"
            f" SELECT {p[3]}, 'enrollments', {p[0]}::text, {p[4]}::jsonb, '{{}}'::jsonb FROM a{i})"
        )
    counts = " + ".join(f"(SELECT count(*) FROM a{i})" for i in range(k))
    return "WITH " + ", ".join(chains) + " SELECT " + counts


async def main() -> None:
    dsn = os.environ["TPP_PG_ADMIN_URL"]
    rows = int(os.environ.get("N", "48000"))
    sizes = [int(k) for k in os.environ.get("KS", "1,4,8,16").split(",")]
    admin = await asyncpg.connect(dsn)
    await admin.execute(SETUP)
    try:
        sessions = [uuid.uuid4() for _ in range(SESSIONS)]
        await admin.executemany(
            "INSERT INTO probe_session (id) VALUES ($1)", [(s,) for s in sessions]
        )
        conns = [await asyncpg.connect(dsn) for _ in range(CONNECTIONS)]
        payload = json.dumps({"type": "accepted", "data": {"note": "x" * 200}})
        counter = itertools.count()
        for k in sizes * 2:
            sql = statement(k)

            async def client(conn: asyncpg.Connection, count: int, sql: str, k: int) -> None:
                for _ in range(count):
                    args: list[object] = []
                    for _ in range(k):  # K sessions in a row: never one twice in a statement
                        session = sessions[next(counter) % SESSIONS]
                        args += [session, uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), payload]
                    await conn.fetchval(sql, *args)

            each = rows // CONNECTIONS // k
            cpu, started = postgres_cpu_s(), time.perf_counter()
            await asyncio.gather(*(client(c, each, sql, k) for c in conns))
            elapsed, cpu = time.perf_counter() - started, postgres_cpu_s() - cpu
            done = each * k * CONNECTIONS
            per_row = cpu / done * 1e6
            print(f"K={k:3d} {done / elapsed:8.0f} rows/s, PostgreSQL {per_row:6.1f} µs a row")
        for conn in conns:
            await conn.close()
    finally:
        await admin.execute("DROP TABLE probe_session, probe_enrollment, probe_outbox")
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
