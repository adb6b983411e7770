"""Tracing benchmark (issue 6): enrollment command throughput with and without tracing.

The enrollment service runs under uvicorn in its own processes (``harness.WORKERS`` workers,
relay on, consumers off, the session view seeded directly), this process generates the load
(64 clients back to back, ``POST /sessions/{id}/enrollments``), in two configurations:

- ``off``: ``OTEL_SDK_DISABLED=true`` (no spans, no instrumentation);
- ``on``: tracing at the default sampling, which records every command (so here every
  request: HTTP span, transaction span with its statements as events, the outbox row's trace
  context, the relay's producer span), exported by the OTLP/HTTP batch exporter to a
  stand-in collector on loopback (``bench/otlp_sink.py``, its own process).

Runs alternate (off, on, on, off, off, on, ...) so that drift hits both alike; each
configuration has its own scratch database seeded the same way. Figures: the median rate of
each, their ratio (target: tracing costs at most 25%, i.e. ratio >= 0.75), the server's CPU
per command in each (a steadier measure of the cost when other work shares the machine),
p50/p99 latencies. Spans go out as OTLP/JSON, the platform's default
(``OTEL_EXPORTER_OTLP_PROTOCOL``; ``tpp_plumbing.observability.otlp``).

    set -a; . deploy/local.env; set +a
    uv run python bench/run.py tracing
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import subprocess
import sys
from collections.abc import AsyncIterator

from bench_enrollment import CAPACITY, SESSIONS, enroll_requests, seed
from harness import (
    ROOT,
    Context,
    CpuMeter,
    Figure,
    free_port,
    median_figure,
    scratch_database,
    scratch_topics,
    serve,
    service_env,
)
from loadgen import closed_loop

NAME = "tracing"
TIME_BUDGET_S = 240
#: Pairs of runs (off and on). Five, not three: the VM's speed changes within a minute, so
#: one pair in three can land across a change; the median of five is steadier.
REPEATS = 5
CONCURRENCY = 64
MODES = ("off", "on")


@contextlib.asynccontextmanager
async def otlp_sink() -> AsyncIterator[int]:
    """The stand-in collector in its own process; yields its port."""
    port = free_port()
    process = subprocess.Popen(  # noqa: S603, ASYNC220 - our own script, fixed arguments
        [sys.executable, str(ROOT / "bench" / "otlp_sink.py"), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(50):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        yield port
    finally:
        process.terminate()
        out, _ = await asyncio.to_thread(process.communicate, None, 10)
        print(f"  {out.decode().strip()}", flush=True)


def tracing_env(mode: str, sink_port: int) -> dict[str, str]:
    """OTEL_* variables of a configuration."""
    if mode == "off":
        return {"OTEL_SDK_DISABLED": "true"}
    env = {
        "OTEL_SDK_DISABLED": "false",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
        "OTEL_SERVICE_NAME": "enrollment",
        "OTEL_TRACES_SAMPLER": "",  # the platform's default
    }
    return env


async def run(ctx: Context) -> list[Figure]:
    """Alternate tracing off and on; report both rates, their ratio and latencies."""
    seconds = 3.0 if ctx.quick else 8.0
    repeats = 1 if ctx.quick else REPEATS
    trainees = 20_000 if ctx.quick else 60_000
    rates: dict[str, list[float]] = {m: [] for m in MODES}
    p50s: dict[str, list[float]] = {m: [] for m in MODES}
    p99s: dict[str, list[float]] = {m: [] for m in MODES}
    cpu_ms: dict[str, list[float]] = {m: [] for m in MODES}
    async with (
        scratch_database(ctx, "enrollment", "_troff") as url_off,
        scratch_database(ctx, "enrollment", "_tron") as url_on,
        scratch_topics(ctx) as prefix,
        otlp_sink() as sink_port,
    ):
        data = {}
        for mode, url in (("off", url_off), ("on", url_on)):
            data[mode] = (url, *await seed(url, SESSIONS, CAPACITY, trainees))
        counters = {m: itertools.count() for m in MODES}
        for repeat in range(repeats):
            # off, on, then on, off, ...: a machine slowing down (or speeding up) through the
            # run weighs on each side of a pair in turn, not always on the second.
            for mode in MODES if repeat % 2 == 0 else MODES[::-1]:
                url, session_ids, trainee_ids = data[mode]
                env = service_env(
                    "enrollment",
                    url,
                    consumers_enabled=False,
                    relay_enabled=True,
                    database_pool_size=20,
                ) | tracing_env(mode, sink_port)
                env["TPP_KAFKA_TOPIC_PREFIX"] = prefix
                make = enroll_requests(session_ids, trainee_ids, counters[mode])
                async with serve(
                    ctx, "tpp_enrollment.app:create_app", env, label=f"tracing-{mode}"
                ) as server:
                    await closed_loop(server.port, make, concurrency=16, count=500)  # warm up
                    with CpuMeter(server) as cpu:
                        result = await closed_loop(
                            server.port, make, concurrency=CONCURRENCY, seconds=seconds
                        )
                rates[mode].append(result.ok() / result.seconds)
                p50s[mode].append(result.percentile(0.5))
                p99s[mode].append(result.percentile(0.99))
                # Server CPU per command: what tracing costs, whatever else the machine does.
                cpu_ms[mode].append(1000 * cpu.cores["server"] * result.seconds / result.ok())
                print(
                    f"  tracing {mode}: {rates[mode][-1]:.0f} commands/s,"
                    f" p50 {p50s[mode][-1]:.1f} ms, p99 {p99s[mode][-1]:.1f} ms,"
                    f" {cpu_ms[mode][-1]:.2f} ms server CPU/command,"
                    f" {dict(result.statuses)}; {cpu}",
                    flush=True,
                )

    # Ratios of runs made back to back (off then on, or on then off), then their median:
    # the machine's drift and other work move both sides of a pair alike.
    def paired(a: list[float], b: list[float]) -> list[float]:
        return [y / x for x, y in zip(a, b, strict=True)]

    figures = [
        median_figure(
            "tracing.enroll.off",
            rates["off"],
            "commands/s",
            ceiling="ceiling.pg.row_outbox.c32",
            note=f"OTEL_SDK_DISABLED=true, {CONCURRENCY} clients",
        ),
        median_figure(
            "tracing.enroll.on",
            rates["on"],
            "commands/s",
            ceiling="ceiling.pg.row_outbox.c32",
            note="default sampling (every command recorded), OTLP/HTTP export to a loopback sink",
        ),
        median_figure(
            "tracing.enroll.on_over_off",
            paired(rates["off"], rates["on"]),
            "ratio",
            target=">= 0.75",
            note="median of back-to-back pairs; tracing may cost at most 25% of throughput",
        ),
        median_figure(
            "tracing.enroll.cpu_off_over_on",
            paired(cpu_ms["on"], cpu_ms["off"]),
            "ratio",
            note="server CPU per command, off / on, back-to-back pairs",
        ),
    ]
    for mode in MODES:
        figures.append(median_figure(f"tracing.enroll.{mode}.cpu", cpu_ms[mode], "ms/command"))
        figures.append(median_figure(f"tracing.enroll.{mode}.p50", p50s[mode], "ms"))
        figures.append(median_figure(f"tracing.enroll.{mode}.p99", p99s[mode], "ms"))
    return figures


if __name__ == "__main__":
    for figure in asyncio.run(run(Context())):
        print(figure)
