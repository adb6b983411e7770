"""Registry benchmark (issue 3): session creation rate; catalogue and list latency at 500/s.

The registry runs under uvicorn in its own processes (``harness.WORKERS`` workers, relay on,
publishing to a scratch topic prefix) against a scratch database; this process generates the
load over HTTP.

- ``registry.create.max``: sessions created per second by 64 clients back to back, three
  runs of 1,500 (the median is the figure); copies in SQL then make 10,000 sessions.
- Half of the sessions are then published (in SQL: setup, not measured).
- ``registry.catalogue.*`` / ``registry.list.*``: 500 requests/s in the open loop, half public
  catalogue searches (a word and a year), half session lists (a year and a field), first page
  of 50; p50 and p99 of each, three runs.

    set -a; . deploy/local.env; set +a
    uv run python bench/run.py registry
"""

# Benchmark data, not cryptography.
# ruff: noqa: S311

from __future__ import annotations

import json
import random
import uuid
from urllib.parse import quote

import asyncpg
from harness import (
    Context,
    CpuMeter,
    Figure,
    libpq,
    median_figure,
    scratch_database,
    scratch_topics,
    serve,
    service_env,
)
from loadgen import RequestFactory, Result, closed_loop, open_loop, request

NAME = "registry"
TIME_BUDGET_S = 180
FIELDS = ["new_energy", "agriculture_forestry", "information_technology", "medical_health"]
WORDS = ["solar", "irrigation", "telemedicine", "grid", "robotics", "fisheries", "seeds"]
YEARS = 5
RARE = ["zebra", "geothermal", "Session 123", "telemed"]  # few or no titles: no early stop


async def add_organizers(port: int, n: int) -> list[str]:
    """Create ``n`` organizers through the API; their ids."""

    def make(i: int) -> tuple[str, bytes]:
        name = f"Bench organizer {i} {uuid.uuid4().hex[:8]}"
        body = json.dumps({"name": name, "kind": "university", "country": "CN"}).encode()
        return "organizer", request("POST", "/organizers", body)

    result = await closed_loop(port, make, concurrency=4, count=n, keep_bodies=True)
    assert result.ok() == n, result.bodies[:1]
    return [json.loads(body)["id"] for _, body in result.bodies]


def create_requests(organizers: list[str], offset: int) -> RequestFactory:
    """Request i creates session offset+i: spread over years, fields, organizers, venues."""

    def make(i: int) -> tuple[str, bytes]:
        n = offset + i
        year = 2030 + n % YEARS
        month = 1 + n % 12
        words = " ".join(random.sample(WORDS, 2))
        body = {
            "organizer_id": organizers[n % len(organizers)],
            "title": f"Session {n}: {words}",
            "description": f"Training on {words} for engineers and technicians.",
            "field": FIELDS[n % len(FIELDS)],
            "year": year,
            "start_date": f"{year}-{month:02d}-01",
            "end_date": f"{year}-{month:02d}-20",
            "venue_city": "Hangzhou",
            "venue_country": "CN" if n % 10 else "KE",
            "capacity": 30,
            "languages": ["en"],
        }
        return "create", request("POST", "/sessions", json.dumps(body).encode())

    return make


async def fill(url: str, total: int) -> None:
    """Copy sessions in SQL until there are ``total`` (setup: the rate was measured already)."""
    conn = await asyncpg.connect(libpq(url))
    try:
        await conn.execute(
            "INSERT INTO training_session (id, organizer_id, title, field, year, start_date,"
            " end_date, venue_city, venue_country, overseas, capacity, languages, description,"
            " review_required, country_limit, status, version)"
            " SELECT gen_random_uuid(), organizer_id, title || ' ' || n, field, year, start_date,"
            " end_date, venue_city, venue_country, overseas, capacity, languages, description,"
            " review_required, country_limit, status, version"
            " FROM (SELECT *, row_number() OVER () AS n FROM training_session) s,"
            " generate_series(1, 10) AS g"
            " LIMIT greatest(0, $1 - (SELECT count(*) FROM training_session))",
            total,
        )
    finally:
        await conn.close()


async def publish_half(url: str) -> None:
    """Publish every other session (setup in SQL, as if operators had published them)."""
    conn = await asyncpg.connect(libpq(url))
    try:
        await conn.execute(
            "UPDATE training_session SET status = 'published', version = version + 1"
            " WHERE id IN (SELECT id FROM training_session ORDER BY id"
            " LIMIT (SELECT count(*) / 2 FROM training_session))"
        )
        await conn.execute("VACUUM ANALYZE training_session")
    finally:
        await conn.close()


def query_requests(kind: str = "mixed") -> RequestFactory:
    """Catalogue searches and session lists, as the public and the operators send them.

    Catalogue: mostly a word and a year, some a word alone, some a word that few titles
    hold or a title fragment. Lists: a year and a field, some an organizer or a status.
    """

    def make(i: int) -> tuple[str, bytes]:
        which = kind if kind != "mixed" else ("catalogue" if i % 2 else "list")
        year = 2030 + random.randrange(YEARS)
        pick = random.random()
        if which == "catalogue":
            word = random.choice(WORDS)
            if pick < 0.7:
                path = f"/catalogue?q={word}&year={year}"
            elif pick < 0.9:
                path = f"/catalogue?q={word}"
            else:
                path = f"/catalogue?q={quote(random.choice(RARE))}"
        elif pick < 0.8:
            path = f"/sessions?year={year}&field={random.choice(FIELDS)}"
        else:
            path = f"/sessions?year={year}&status=published&overseas=true"
        return which, request("GET", path)

    return make


def _report(what: str, result: Result, cpu: CpuMeter) -> None:
    per_request = 1000 * cpu.cores["server"] * result.seconds / max(1, result.completed)
    print(
        f"  {what}: {result.ok() / result.seconds:.0f}/s, p50 {result.percentile(0.5):.1f} ms,"
        f" p99 {result.percentile(0.99):.1f} ms; {cpu}; server CPU {per_request:.2f} ms/request",
        flush=True,
    )


async def run(ctx: Context) -> list[Figure]:
    """Create 10,000 sessions, publish half, query at 500/s."""
    repeats = 3
    total = 3_000 if ctx.quick else 10_000
    per_run = 500 if ctx.quick else 1_500  # created through the API; the rest copied in SQL
    seconds = 3.0 if ctx.quick else 6.0
    rate = 500
    figures: list[Figure] = []
    async with scratch_database(ctx, "registry") as url, scratch_topics(ctx) as prefix:
        env = service_env("registry", url, database_pool_size=20)
        env["TPP_KAFKA_TOPIC_PREFIX"] = prefix
        async with serve(ctx, "tpp_registry.app:create_app", env, label="registry") as server:
            organizers = await add_organizers(server.port, 20)
            created, rates = 0, []
            for _ in range(repeats):
                count = per_run
                with CpuMeter(server) as cpu:
                    result = await closed_loop(
                        server.port,
                        create_requests(organizers, created),
                        concurrency=64,
                        count=count,
                    )
                assert result.ok() == count, (dict(result.statuses), result.bodies[:1])
                created += count
                rates.append(result.ok() / result.seconds)
                _report("create, closed loop", result, cpu)
            figures.append(
                median_figure(
                    "registry.create.max",
                    rates,
                    "sessions/s",
                    target=">= 1000",
                    ceiling="ceiling.pg.row_outbox.c32",
                    note=f"3 x {per_run} sessions, 64 clients",
                )
            )
            await fill(url, total)
            await publish_half(url)
            runs: dict[str, list[float]] = {}
            failed = 0  # not 2xx, or no answer within 10 s of the end of the run
            for _ in range(repeats):
                with CpuMeter(server) as cpu:
                    result = await open_loop(
                        server.port, query_requests(), rate=rate, seconds=seconds
                    )
                _report(f"queries, open loop at {rate}/s", result, cpu)
                failed += result.sent - result.ok()
                for kind in ("catalogue", "list"):
                    for q in (50, 99):
                        runs.setdefault(f"{kind}.p{q}", []).append(result.percentile(q / 100, kind))
            for kind in ("catalogue", "list"):
                figures.append(median_figure(f"registry.{kind}.p50@500", runs[f"{kind}.p50"], "ms"))
                figures.append(
                    median_figure(
                        f"registry.{kind}.p99@500",
                        runs[f"{kind}.p99"],
                        "ms",
                        target="<= 20",
                        ceiling="ceiling.http.empty.p99@500",
                        note=f"{total} sessions, half published; {rate} req/s mixed;"
                        f" {failed} requests failed",
                    )
                )
            figures.append(Figure("registry.rss", max(server.rss_mb()), "MiB", target="<= 150"))
    return figures
