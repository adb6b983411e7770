"""Registry benchmark: session creation rate, then catalogue/list p99 at a fixed request rate.

Runs the registry under uvicorn on a throwaway database of the local stack (relay off, so
Kafka is not needed), creates N sessions through HTTP with C concurrent clients, then sends
R requests/s (open loop) to the catalogue and the session list for D seconds.

    set -a; . deploy/local.env; set +a
    uv run python bench/bench_registry.py --sessions 10000 --rate 500 --seconds 10
"""

# Benchmark data, not cryptography; setup runs once before timing (blocking is harmless);
# uvicorn exposes "started" only as a flag, so it is polled.
# ruff: noqa: S311, ASYNC221, ASYNC110

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import uvicorn
from sqlalchemy.engine import make_url
from tpp_registry.app import create_app
from tpp_registry.config import Settings

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ["new_energy", "agriculture_forestry", "information_technology", "medical_health"]
WORDS = ["solar", "irrigation", "telemedicine", "grid", "robotics", "fisheries", "seeds"]


async def scratch_database() -> str:
    name = f"registry_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(os.environ["TPP_PG_ADMIN_URL"])
    try:
        await conn.execute(f'CREATE DATABASE "{name}" OWNER registry')
    finally:
        await conn.close()
    url = make_url(os.environ["TPP_REGISTRY_DATABASE_URL"]).set(database=name)
    rendered = url.render_as_string(hide_password=False)
    env = os.environ | {"TPP_REGISTRY_DATABASE_URL": rendered}
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", "services/registry/alembic.ini", "upgrade", "head"],
        check=True,
        env=env,
        cwd=ROOT,
        capture_output=True,
    )
    return rendered


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def create_sessions(client: httpx.AsyncClient, n: int, concurrency: int) -> float:
    organizers = []
    for i in range(20):
        body = {"name": f"Bench org {i} {uuid.uuid4().hex[:6]}", "kind": "university"}
        response = await client.post("/organizers", json=body | {"country": "CN"})
        organizers.append(response.json()["id"])
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            year = 2030 + i % 5
            month = 1 + i % 12
            words = " ".join(random.sample(WORDS, 2))
            body = {
                "organizer_id": organizers[i % len(organizers)],
                "title": f"Session {i}: {words}",
                "description": f"Training on {words} for engineers.",
                "field": FIELDS[i % len(FIELDS)],
                "year": year,
                "start_date": f"{year}-{month:02d}-01",
                "end_date": f"{year}-{month:02d}-20",
                "venue_city": "Hangzhou",
                "venue_country": "CN" if i % 10 else "KE",
                "capacity": 30,
                "languages": ["en"],
            }
            response = await client.post("/sessions", json=body)
            assert response.status_code == 201, response.text
            if i % 2 == 0:
                await client.post(f"/sessions/{response.json()['id']}/publish")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - started)


async def load(client: httpx.AsyncClient, rate: int, seconds: float) -> dict[str, list[float]]:
    latencies: dict[str, list[float]] = {"catalogue": [], "list": []}
    errors = 0

    async def one(kind: str) -> None:
        nonlocal errors
        if kind == "catalogue":
            params = {"q": random.choice(WORDS), "year": str(2030 + random.randint(0, 4))}
            path = "/catalogue"
        else:
            params = {"year": str(2030 + random.randint(0, 4)), "field": random.choice(FIELDS)}
            path = "/sessions"
        started = time.perf_counter()
        response = await client.get(path, params=params)
        latencies[kind].append(time.perf_counter() - started)
        if response.status_code != 200:
            errors += 1

    tasks = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(int(rate * seconds)):
        # Open loop: requests leave on schedule whether or not earlier ones finished.
        await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
        tasks.append(asyncio.create_task(one("catalogue" if i % 2 else "list")))
    await asyncio.gather(*tasks)
    if errors:
        print(f"errors: {errors}")
    return latencies


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--port", type=int, default=18001)
    args = parser.parse_args()
    url = await scratch_database()
    settings = Settings(database_url=url, relay_enabled=False, database_pool_size=20)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), port=args.port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    limits = httpx.Limits(max_connections=200)
    base = f"http://127.0.0.1:{args.port}"
    try:
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
            per_s = await create_sessions(client, args.sessions, args.concurrency)
            print(f"creation: {per_s:.0f} sessions/s (half of them published too)")
            for kind, values in (await load(client, args.rate, args.seconds)).items():
                print(
                    f"{kind}: n={len(values)} p50={p(values, 0.5):.1f}ms"
                    f" p99={p(values, 0.99):.1f}ms max={max(values) * 1000:.1f}ms"
                )
    finally:
        server.should_exit = True
        await serving
        conn = await asyncpg.connect(os.environ["TPP_PG_ADMIN_URL"])
        try:
            await conn.execute(f'DROP DATABASE "{make_url(url).database}" WITH (FORCE)')
        finally:
            await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
