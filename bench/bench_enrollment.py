"""Enrollment benchmark (issue 4): enrollment commands over HTTP, and bulk CSV nominations.

The service runs under uvicorn in its own processes (``harness.WORKERS`` workers, relay on,
publishing to a scratch topic prefix; consumers off: the session view is seeded directly),
against a scratch database; this process generates the load.

- ``enroll.max``: enrollment commands/s with 64 clients back to back (closed loop).
- ``enroll.p50/p99@1000``: latency of enrollment commands sent at 1,000/s (open loop).
- ``import.rows_per_s``: a nominations CSV (new trainees, half of them for sessions that
  are full) from upload to the job's ``done``.

    set -a; . deploy/local.env; set +a
    uv run python bench/run.py enrollment
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import date

import asyncpg
from harness import (
    Context,
    CpuMeter,
    Figure,
    Server,
    libpq,
    median_figure,
    scratch_database,
    scratch_topics,
    serve,
    service_env,
)
from loadgen import (
    RequestFactory,
    closed_loop,
    open_loop,
    operator_authorization,
    request,
    wall,
)
from tpp_enrollment.personal import PersonalData

NAME = "enrollment"
TIME_BUDGET_S = 240
REPEATS = 3
RATE = 1000
SESSIONS, CAPACITY = 400, 40
COUNTRIES = ["KE", "NG", "ET", "VN", "LA", "KH", "PK", "EG", "BR", "PE", "ID", "MN", "TZ", "GH"]
GENDERS = ["female", "male"]
PROFESSIONS = ["expert", "scholar", "st_official", "technical_professional"]


async def seed(
    url: str, sessions: int, capacity: int, trainees: int
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Open sessions in the session view and registered trainees, written straight in SQL."""
    conn = await asyncpg.connect(libpq(url))
    try:
        session_ids = [uuid.uuid4() for _ in range(sessions)]
        await conn.execute(
            "INSERT INTO session_view (session_id, status, year, start_date, end_date, capacity,"
            " review_required, country_limit, venue_city, venue_country, version)"
            " SELECT id, 'published', 2031, '2031-05-01', '2031-05-20', $2, false,"
            " CASE WHEN n % 4 = 0 THEN 8 END, 'Hangzhou', 'CN', 2"
            " FROM unnest($1::uuid[]) WITH ORDINALITY AS s(id, n)",
            session_ids,
            capacity,
        )
        trainee_ids = [uuid.uuid4() for _ in range(trainees)]
        # Personal data sealed as the service seals it (keys from the environment).
        personal = PersonalData.from_config(
            os.environ["TPP_ENROLLMENT_PERSONAL_DATA_KEYS"],
            os.environ["TPP_ENROLLMENT_PASSPORT_HASH_KEY"],
        )
        sealed = [
            personal.seal_trainee(
                tid,
                f"BP{n}",
                COUNTRIES[n % len(COUNTRIES)],
                f"trainee{n}@example.org",
                date(1985, 1, 1),
            )
            for n, tid in enumerate(trainee_ids, start=1)
        ]
        await conn.execute(
            "INSERT INTO trainee (id, full_name, country, gender, profession, organization,"
            " passport_hash, passport_number_sealed, email_sealed, birth_date_sealed)"
            " SELECT id, 'Bench Trainee ' || n, ($2::text[])[1 + n % $3], "
            " ($4::text[])[1 + n % 2], ($5::text[])[1 + n % 4], 'Institute ' || n % 97,"
            " h, p, e, b"
            " FROM unnest($1::uuid[], $6::bytea[], $7::bytea[], $8::bytea[], $9::bytea[])"
            " WITH ORDINALITY AS t(id, h, p, e, b, n)",
            trainee_ids,
            COUNTRIES,
            len(COUNTRIES),
            GENDERS,
            PROFESSIONS,
            *(
                [row[c] for row in sealed]
                for c in (
                    "passport_hash",
                    "passport_number_sealed",
                    "email_sealed",
                    "birth_date_sealed",
                )
            ),
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return session_ids, trainee_ids


def enroll_requests(
    session_ids: list[uuid.UUID], trainee_ids: list[uuid.UUID], counter: Iterator[int]
) -> RequestFactory:
    """Each request: the next trainee asks for a place in a random session.

    Past the last trainee the counter starts again, and each trainee asks for the session
    after the one it asked for last time, so that no pair repeats (a repeat is a 409) until
    every trainee has asked for every session. A trainee's first session comes from its
    (random) id, so that factories made again for the same trainees, each with the counter
    where the last one left it, go on without repeats too."""
    first = [trainee.int % len(session_ids) for trainee in trainee_ids]

    def make(_: int) -> tuple[str, bytes]:
        turn, index = divmod(next(counter), len(trainee_ids))
        trainee = trainee_ids[index]
        session = session_ids[(first[index] + turn) % len(session_ids)]
        body = json.dumps({"trainee_id": str(trainee)}).encode()
        return "enroll", request("POST", f"/sessions/{session}/enrollments", body)

    return make


def nominations_csv(session_ids: list, rows: int, tag: str) -> bytes:
    """A nominations file: new trainees, each nominated to one of the sessions."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "full_name",
            "country",
            "gender",
            "profession",
            "organization",
            "email",
            "passport_number",
            "birth_date",
            "session_id",
        ]
    )
    for n in range(rows):
        writer.writerow(
            [
                f"Nominee {tag} {n}",
                COUNTRIES[n % len(COUNTRIES)],
                GENDERS[n % 2],
                PROFESSIONS[n % 4],
                f"Ministry of Science {n % 50}",
                f"nominee.{tag}.{n}@example.org",
                f"N{tag}{n}".upper(),
                date(1970 + n % 30, 1 + n % 12, 1 + n % 28).isoformat(),
                session_ids[n % len(session_ids)],
            ]
        )
    return out.getvalue().encode()


def multipart(content: bytes, filename: str) -> tuple[bytes, str]:
    """A multipart/form-data body with one file field."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), boundary


async def import_rate(port: int, content: bytes, rows: int) -> float:
    """Rows per second of one CSV import, from upload to the job's end."""
    body, boundary = multipart(content, "nominations.csv")
    raw = (
        f"POST /imports HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {operator_authorization()}"
        f"\r\nContent-Type: multipart/form-data; boundary={boundary}"
        f"\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    started = wall()
    result = await closed_loop(
        port, lambda _: ("upload", raw), concurrency=1, count=1, keep_bodies=True
    )
    job = json.loads(result.bodies[0][1])
    assert result.ok() == 1, job
    path = f"/imports/{job['id']}?max_errors=0"
    while True:
        poll = await closed_loop(
            port, lambda _: ("poll", request("GET", path)), concurrency=1, count=1, keep_bodies=True
        )
        state = json.loads(poll.bodies[0][1])
        if state["status"] != "running":
            break
        await asyncio.sleep(0.05)
    elapsed = wall() - started
    assert state["status"] == "done", state
    assert state["processed"] == rows, state
    return rows / elapsed


async def _throughput(ctx: Context, server: Server, make: RequestFactory) -> list[float]:
    """Enrollment commands per second, 64 clients back to back, three runs."""
    rates = []
    for _ in range(REPEATS):
        with CpuMeter(server) as cpu:
            result = await closed_loop(server.port, make, concurrency=64, seconds=_seconds(ctx))
        rates.append(result.ok() / result.seconds)
        per_command = 1000 * cpu.cores["server"] * result.seconds / max(1, result.completed)
        print(
            f"  enroll, closed loop: {rates[-1]:.0f}/s {dict(result.statuses)};"
            f" {cpu}; server CPU {per_command:.2f} ms/command",
            flush=True,
        )
    return rates


async def relay_caught_up(url: str, timeout_s: float = 60.0) -> float:
    """Wait until the relay has published every committed event; the seconds it took.

    A latency run measures the rate it offers, not the tail of the run before it (the
    throughput runs leave tens of thousands of events for the relay to publish).
    """
    conn = await asyncpg.connect(libpq(url))
    started = time.monotonic()
    try:
        while await conn.fetchval("SELECT count(*) FROM outbox_message WHERE published_at IS NULL"):
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"the relay did not catch up within {timeout_s:.0f} s")
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    return time.monotonic() - started


async def _latency(
    ctx: Context, server: Server, make: RequestFactory, url: str, relay: bool = True
) -> tuple[list, list]:
    """p50 and p99 of enrollment commands sent at RATE/s (open loop), three runs, each
    once the relay has caught up with what came before."""
    p50s, p99s = [], []
    for _ in range(REPEATS):
        waited = await relay_caught_up(url) if relay else 0.0
        if waited > 0.5:
            print(f"  (waited {waited:.1f} s for the relay to catch up)", flush=True)
        result = await open_loop(server.port, make, rate=RATE, seconds=_seconds(ctx))
        p50s.append(result.percentile(0.5))
        p99s.append(result.percentile(0.99))
        print(
            f"  enroll, open loop at {RATE}/s: p50 {p50s[-1]:.1f} ms, p99 {p99s[-1]:.1f} ms,"
            f" {dict(result.statuses)}, {result.errors} errors",
            flush=True,
        )
    return p50s, p99s


def _seconds(ctx: Context) -> float:
    return 3.0 if ctx.quick else 6.0


async def run(ctx: Context) -> list[Figure]:
    """Seed, serve, measure enrollment commands and CSV imports."""
    trainees = 20_000 if ctx.quick else 60_000
    # For profiling runs: TPP_BENCH_PARTS=max,latency,import (default: all three), and
    # TPP_BENCH_RELAY=0 to measure without the relay.
    parts = set(ctx.env.get("TPP_BENCH_PARTS", "max,latency,import").split(","))
    relay = ctx.env.get("TPP_BENCH_RELAY", "1") == "1"
    figures: list[Figure] = []
    async with scratch_database(ctx, "enrollment") as url, scratch_topics(ctx) as prefix:
        session_ids, trainee_ids = await seed(url, SESSIONS, CAPACITY, trainees)
        env = service_env(
            "enrollment", url, consumers_enabled=False, relay_enabled=relay, database_pool_size=20
        )
        env["TPP_KAFKA_TOPIC_PREFIX"] = prefix
        async with serve(ctx, "tpp_enrollment.app:create_app", env, label="enrollment") as server:
            counter = itertools.count()
            make = enroll_requests(session_ids, trainee_ids, counter)
            # Warm up: connections, prepared statements, the relay's producer.
            await closed_loop(server.port, make, concurrency=16, count=500)
            if "max" in parts:
                rates = await _throughput(ctx, server, make)
                figures.append(
                    median_figure(
                        "enrollment.enroll.max",
                        rates,
                        "commands/s",
                        target=">= 1500",
                        ceiling="ceiling.pg.row_outbox.c32",
                        note=f"{SESSIONS} sessions of {CAPACITY}, 64 clients",
                    )
                )
            if "latency" in parts:
                p50s, p99s = await _latency(ctx, server, make, url, relay)
                figures.append(median_figure(f"enrollment.enroll.p50@{RATE}", p50s, "ms"))
                figures.append(
                    median_figure(
                        f"enrollment.enroll.p99@{RATE}",
                        p99s,
                        "ms",
                        target="<= 50",
                        ceiling=f"ceiling.http.empty.p99@{RATE}",
                    )
                )
            if "import" in parts:
                rows = 10_000 if ctx.quick else 30_000
                rates = []
                for n in range(REPEATS):
                    # A year's program: ~50 sessions that the nominations go to.
                    content = nominations_csv(session_ids[:50], rows, f"{ctx.run_id}r{n}")
                    with CpuMeter(server) as cpu:
                        rates.append(await import_rate(server.port, content, rows))
                    print(f"  import: {rates[-1]:.0f} rows/s; {cpu}", flush=True)
                figures.append(
                    median_figure(
                        "enrollment.import.rows_per_s",
                        rates,
                        "rows/s",
                        target=">= 10000",
                        note=f"{rows} new trainees over 50 sessions per file",
                    )
                )
            figures.append(Figure("enrollment.rss", max(server.rss_mb()), "MiB", target="<= 150"))
    return figures
