"""Profile a service's slowest path under load with py-spy (a tool, not part of make bench).

    set -a; . deploy/local.env; set +a
    uv run python bench/profile_service.py enroll      # or: import, create, catalogue, list

Starts the service like the benchmarks do (one worker, so one process to sample), drives the
chosen path from this process, and has py-spy (``uvx py-spy``) sample the worker for a few
seconds. Writes ``bench/results/profile-<path>.txt.tmp`` (collapsed stacks) and prints the
functions with the most samples, inclusive and exclusive.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import os
import subprocess
import sys
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).parent))

import bench_enrollment as enrollment
import bench_registry as registry
from bench_tracing import otlp_sink, tracing_env
from harness import ROOT, Context, scratch_database, scratch_topics, serve, service_env
from loadgen import closed_loop


def summarize(collapsed: Path, top: int = 40) -> None:
    """Print the frames with the most samples (inclusive, then exclusive)."""
    inclusive: collections.Counter[str] = collections.Counter()
    exclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] += n
        exclusive[frames[-1]] += n
    print(f"{total} samples")
    print("-- inclusive")
    for frame, n in inclusive.most_common(top):
        print(f"{100 * n / total:5.1f}% {frame}")
    print("-- exclusive")
    for frame, n in exclusive.most_common(top // 2):
        print(f"{100 * n / total:5.1f}% {frame}")


async def watch_database(ctx: Context, seconds: float) -> None:
    """Print what the benchmark's database sessions wait on, and CPU use, while load runs."""
    conn = await asyncpg.connect(ctx.admin_url)
    waits: collections.Counter[str] = collections.Counter()
    cpu0 = _cpu_by_command()
    try:
        for _ in range(int(seconds * 4) - 2):
            await asyncio.sleep(0.25)
            rows = await conn.fetch(
                "SELECT coalesce(wait_event_type, 'CPU') || ':' || coalesce(wait_event, '-')"
                " || ' ' || state AS what FROM pg_stat_activity WHERE datname LIKE 'bench_%'"
            )
            waits.update(r["what"] for r in rows)
    finally:
        await conn.close()
    cpu1 = _cpu_by_command()
    print("database sessions by wait event (samples):", dict(waits.most_common(12)))
    spent = {k: round(cpu1.get(k, 0) - cpu0.get(k, 0), 1) for k in cpu1}
    print(
        "CPU seconds by command:",
        {k: v for k, v in sorted(spent.items(), key=lambda kv: -kv[1]) if v > 0.2},
    )


def _cpu_by_command() -> dict[str, float]:
    ticks = os.sysconf("SC_CLK_TCK")
    used: collections.Counter[str] = collections.Counter()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, _, rest = stat.read_text().rpartition(")")
            fields = rest.split()
            used[head.split("(", 1)[1]] += (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError):
            continue
    return dict(used)


async def profile(path: str, seconds: int, *, tracing: bool = False) -> None:
    """Drive ``path`` and sample the server (``tracing``: every request traced and exported)."""
    ctx = Context()
    service = "registry" if path in {"create", "catalogue", "list"} else "enrollment"
    out = ROOT / "bench" / "results" / f"profile-{path}.txt.tmp"
    async with (
        scratch_database(ctx, service) as url,
        scratch_topics(ctx) as prefix,
        otlp_sink() as sink_port,
    ):
        env = service_env(service, url, consumers_enabled=False, database_pool_size=20)
        env |= tracing_env("on" if tracing else "off", sink_port)
        env["TPP_KAFKA_TOPIC_PREFIX"] = prefix
        app = f"tpp_{service}.app:create_app"
        if service == "enrollment":
            sessions, trainees = await enrollment.seed(url, 400, 40, 60_000)
        async with serve(ctx, app, env, workers=1, label=f"profile-{service}") as server:
            if service == "registry":
                organizers = await registry.add_organizers(server.port, 20)
                if path == "create":
                    make = registry.create_requests(organizers, 0)
                else:
                    await closed_loop(
                        server.port,
                        registry.create_requests(organizers, 0),
                        concurrency=32,
                        count=10_000,
                    )
                    await registry.publish_half(url)
                    make = registry.query_requests(path)
            elif path == "enroll":
                make = enrollment.enroll_requests(sessions, trainees, itertools.count())
            pid = str(server.pids()[0])
            rate = os.environ.get("PROFILE_RATE", "100")  # samples per second
            spy_args = ["record", "--pid", pid, "--duration", str(seconds), "--format", "raw"]
            spy_args += ["--rate", rate]
            if os.environ.get("PROFILE_GIL") == "1":  # only the thread holding the GIL
                spy_args.append("--gil")
            if os.environ.get("PROFILE_NATIVE") == "1":  # C and Cython frames too (pauses)
                spy_args.append("--native")
            else:
                spy_args.append("--nonblocking")
            # Popen returns at once; py-spy samples while this loop drives the load.
            spy = subprocess.Popen(  # noqa: S603, ASYNC220 - fixed command
                ["uvx", "py-spy", *spy_args, "--output", str(out)],  # noqa: S607
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if path == "import":
                content = enrollment.nominations_csv(sessions[:50], 30_000, "prof")
                print(f"{await enrollment.import_rate(server.port, content, 30_000):.0f} rows/s")
            else:
                watch = asyncio.create_task(watch_database(ctx, seconds))
                result = await closed_loop(server.port, make, concurrency=32, seconds=seconds)
                print(f"{result.throughput:.0f}/s {dict(result.statuses)}")
                await watch
            await asyncio.to_thread(spy.wait)
    summarize(out)


def main() -> None:
    """Parse arguments and profile."""
    parser = argparse.ArgumentParser()
    parser.add_argument("path", choices=["enroll", "import", "create", "catalogue", "list"])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument(
        "--tracing", action="store_true", help="Trace every request, exported to a sink."
    )
    args = parser.parse_args()
    asyncio.run(profile(args.path, args.seconds, tracing=args.tracing))


if __name__ == "__main__":
    main()
