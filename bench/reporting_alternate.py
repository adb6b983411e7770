"""Reporting's ingest and queries, this checkout against another, alternated on the same events.

    set -a; . deploy/local.env; set +a
    uv run --no-sync python bench/reporting_alternate.py --before PATH [--events 1000000]
        [--order ABABAB]

``PATH`` is another version's checkout with its own synced ``.venv`` (``git worktree add
--detach PATH <commit> && cd PATH && uv sync --all-packages --frozen``). The events are loaded
once on scratch topics; then each round (``A``: ``PATH``, ``B``: this checkout) measures the
``kafka_inbox`` ceiling with this checkout's code on a fresh database, then runs, in its own
checkout and with its own bench code, the reporting service's ingest of every event into
another fresh database, the rebuild and the report queries at 500 req/s, as ``bench_reporting``
does. Each round prints one line; the end, each side's medians. On a shared machine compare
the medians and the same-round ratios, not single runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from harness import ROOT, Context, libpq
from reporting_ceilings import bare_consumer, consumed
from reporting_events import TOPICS, Events, load
from scratch import scratch_database, scratch_topics

#: Run in a round's checkout (with its interpreter): what ``bench_reporting`` measures after
#: its ceilings. Older checkouts kept these functions in ``bench_reporting`` and ``harness``.
ROUND = """
import asyncio, json, os, sys
sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
from harness import Context
try:
    from scratch import scratch_database
except ImportError:
    from harness import scratch_database
try:
    from reporting_service import ingest, queries, rebuild
except ImportError:
    from bench_reporting import ingest, queries, rebuild

async def main():
    prefix, total, label, sessions = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    ctx = Context()
    ids = json.loads(open(sessions).read())
    async with scratch_database(ctx, "reporting", label) as url:
        rate, cpu = await ingest(ctx, url, prefix, total)
        seconds, _ = await asyncio.to_thread(rebuild, ctx, url, prefix)
        p50, p99, errors, note = await queries(ctx, url, prefix, ids, 500, 15.0)
    print("ROUND " + json.dumps({"ingest": rate, "ingest_cpu": cpu, "rebuild": seconds,
          "p50": p50, "p99": p99, "errors": errors, "queries": note}), flush=True)

asyncio.run(main())
"""


async def reset_group(ctx: Context, prefix: str) -> None:
    """Commit offset 0 on every partition for the service's group: the next round reads all."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    kafka = AIOKafkaConsumer(
        **ctx.kafka.client_options(), group_id=prefix + "reporting", enable_auto_commit=False
    )
    await kafka.start()
    try:
        tps = []
        for topic in TOPICS:
            # aiokafka has no public call for a topic's partitions before subscribing.
            await kafka._client._wait_on_metadata(prefix + topic)
            partitions = kafka.partitions_for_topic(prefix + topic) or ()
            tps += [TopicPartition(prefix + topic, p) for p in partitions]
        kafka.assign(tps)
        await kafka.commit(dict.fromkeys(tps, 0))
    finally:
        await kafka.stop()


def one_round(
    checkout: Path, prefix: str, total: int, label: str, sessions: Path
) -> dict[str, Any]:
    """The service's figures, measured by ``checkout``'s own code."""
    done = subprocess.run(  # noqa: S603  # our own interpreter and arguments
        [str(checkout / ".venv/bin/python"), "-c", ROUND, prefix, str(total), label, str(sessions)],
        cwd=checkout,
        env=os.environ,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("ROUND ")]
    if not lines:
        raise RuntimeError(f"round in {checkout} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("ROUND "))
    return result


async def run(before: Path, events: int, order: str) -> None:
    ctx = Context()
    checkouts = {"A": before, "B": ROOT}
    results: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    async with scratch_topics(ctx) as prefix:
        generator = Events(events)
        total = await load(ctx.kafka, prefix, generator, events)
        sessions = ROOT / "bench/results/reporting-alternate-sessions.json.tmp"
        sessions.parent.mkdir(exist_ok=True)
        sessions.write_text(json.dumps(generator.session_ids))
        print(f"loaded {total:,} events; A = {before}, B = {ROOT}", flush=True)
        for n, side in enumerate(order):
            await reset_group(ctx, prefix)
            async with scratch_database(ctx, "reporting", f"_c{n}") as url:
                ceiling, ceiling_cpu = await consumed(
                    1, total, lambda: bare_consumer(ctx.kafka, prefix, total, inbox_dsn=libpq(url))
                )
            result = await asyncio.to_thread(
                one_round, checkouts[side], prefix, total, f"_r{n}", sessions
            )
            result["ceiling"] = ceiling[0]
            result["vs_inbox"] = result["ingest"] / ceiling[0]
            results[side].append(result)
            print(
                f"round {n} {side}: ingest {result['ingest']:,.0f} events/s, kafka_inbox"
                f" {ceiling[0]:,.0f} ({ceiling_cpu}): vs_inbox {result['vs_inbox']:.2f};"
                f" rebuild {result['rebuild']:.1f} s; query p50 {result['p50']:.1f} ms, p99"
                f" {result['p99']:.1f} ms, {result['errors']} errors ({result['queries']})",
                flush=True,
            )
    for side, rounds in results.items():
        if not rounds:
            continue
        medians = {
            key: statistics.median(r[key] for r in rounds)
            for key in ("ingest", "ceiling", "vs_inbox", "rebuild", "p50", "p99")
        }
        shown = ", ".join(f"{key} {value:,.2f}" for key, value in medians.items())
        print(f"{side} medians of {len(rounds)}: {shown}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="the other checkout (A)")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--order", default="ABABAB", help="rounds, A and B in any order")
    args = parser.parse_args()
    if set(args.order) - {"A", "B"}:
        parser.error("--order holds only A and B")
    asyncio.run(run(args.before.resolve(), args.events, args.order))


if __name__ == "__main__":
    main()
