"""Reporting benchmark: live ingest, rebuild from the log, and report latency at 1M events.

On scratch topics and a scratch database of the local stack:

1. loads N events (default 1,000,000) shaped like the program's: 20 years of annual plans,
   organizers, sessions through their lifecycle, trainees, enrollments through acceptance,
   attendance, completion, evaluation and follow-up (keyed as the services key them);
2. ``ceiling.reporting.kafka_bare``: a bare aiokafka consumer reads every record of the five
   topics (no decoding, nothing written) — the raw-client ceiling, in the same run; and
   ``ceiling.reporting.kafka_decode``: the same consumer decoding each record with the
   reporting service's reader (``tpp_reporting.readers.decode``), nothing written; and
   ``ceiling.reporting.kafka_inbox``: the decoding consumer also claiming each batch's event
   ids in the inbox table (one statement and transaction a batch), nothing else written;
   each with the CPU a record cost (consumer, PostgreSQL, broker);
3. ``reporting.ingest``: the reporting service (uvicorn, its own process, one worker) starts
   on the loaded topics and its consumer applies everything; events/s from its first applied
   batch to the last, polled from the database; ``reporting.ingest.vs_inbox``: its ratio to
   the same run's ``kafka_inbox`` ceiling (target >= 0.75);
4. ``reporting.ingest.one_per_tx``: a FastStream subscriber (not batched) applying each event
   in its own transaction (same projections) for a fixed time on another database;
5. ``reporting.rebuild``: ``python -m tpp_reporting.rebuild`` on the ingested database;
6. ``reporting.query.p50/p99@500``: the service (two workers) answers an open-loop mix of
   report requests at 500 req/s.

    set -a; . deploy/local.env; set +a
    uv run python bench/bench_reporting.py [--events 1000000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Context, Figure, libpq, scratch_database, scratch_topics
from reporting_ceilings import bare_consumer, consumed
from reporting_events import Events, load
from reporting_service import ingest, one_per_transaction, queries, rebuild

NAME = "reporting"
TIME_BUDGET_S = 900  # loads and rebuilds a million events


async def run(ctx: Context, events: int | None = None) -> list[Figure]:
    """The reporting figures."""
    total_target = events or (100_000 if ctx.quick else 1_000_000)
    figures: list[Figure] = []
    async with scratch_topics(ctx) as prefix, scratch_database(ctx, "reporting") as url:
        generator = Events(total_target)
        started = time.perf_counter()
        total = await load(ctx.kafka, prefix, generator, total_target)
        print(
            f"[reporting] loaded {total:,} events in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        bare, bare_cpu = await consumed(3, total, lambda: bare_consumer(ctx.kafka, prefix, total))
        figures.append(
            Figure(
                "ceiling.reporting.kafka_bare",
                bare[1],
                "records/s",
                runs=bare,
                note=f"bare aiokafka consumer, same topics, nothing decoded; {bare_cpu}",
            )
        )
        print(f"[reporting] bare aiokafka: {bare} ({bare_cpu})", flush=True)
        decoding, decoding_cpu = await consumed(
            3, total, lambda: bare_consumer(ctx.kafka, prefix, total, decoding=True)
        )
        figures.append(
            Figure(
                "ceiling.reporting.kafka_decode",
                decoding[1],
                "records/s",
                runs=decoding,
                ceiling="ceiling.reporting.kafka_bare",
                note="bare aiokafka consumer decoding each record with reporting's reader"
                " (msgspec), nothing written: the most its consumer can reach in one process;"
                f" {decoding_cpu}",
            )
        )
        print(f"[reporting] decoding aiokafka: {decoding} ({decoding_cpu})", flush=True)
        claiming, claiming_cpu = await consumed(
            3, total, lambda: bare_consumer(ctx.kafka, prefix, total, inbox_dsn=libpq(url))
        )
        figures.append(
            Figure(
                "ceiling.reporting.kafka_inbox",
                claiming[1],
                "records/s",
                runs=claiming,
                ceiling="ceiling.reporting.kafka_bare",
                note="the decoding consumer claiming each batch's event ids in the inbox (one"
                " statement and transaction a batch), nothing else written: what the design's"
                f" inbox alone leaves; {claiming_cpu}",
            )
        )
        print(f"[reporting] decoding + inbox claims: {claiming} ({claiming_cpu})", flush=True)
        rate, cpu = await ingest(ctx, url, prefix, total)
        figures.append(
            Figure(
                "reporting.ingest",
                rate,
                "events/s",
                target=">= 20000",
                ceiling="ceiling.reporting.kafka_inbox",
                note=cpu,
            )
        )
        # The target is against what reading, decoding and claiming alone reach here (the bare
        # consumer decodes nothing; half of it needed more cores than the machine has).
        figures.append(
            Figure(
                "reporting.ingest.vs_inbox",
                rate / claiming[1],
                "x",
                target=">= 0.75",
                note=f"reporting.ingest / ceiling.reporting.kafka_inbox ({claiming[1]:,.0f}"
                " records/s), same run",
            )
        )
        print(f"[reporting] ingest {rate:,.0f} events/s ({cpu})", flush=True)
        one = await one_per_transaction(ctx, prefix, 5.0 if ctx.quick else 10.0)
        figures.append(
            Figure(
                "reporting.ingest.one_per_tx",
                one,
                "events/s",
                note="FastStream, one event per transaction",
            )
        )
        figures.append(Figure("reporting.ingest.vs_one_per_tx", rate / one, "x", target=">= 10"))
        print(f"[reporting] one per transaction {one:,.0f} events/s", flush=True)
        seconds, records = await asyncio.to_thread(rebuild, ctx, url, prefix)
        figures.append(
            Figure("reporting.rebuild", seconds, "s", target="<= 30", note=f"{records:,} records")
        )
        print(f"[reporting] rebuild {records:,} records in {seconds:.1f} s", flush=True)
        p50, p99, errors, cpu = await queries(
            ctx, url, prefix, generator.session_ids, 500, 5.0 if ctx.quick else 15.0
        )
        figures.append(
            Figure(
                "reporting.query.p50@500",
                p50,
                "ms",
                note=f"{total:,} events; {errors} errors; {cpu}",
            )
        )
        figures.append(
            Figure(
                "reporting.query.p99@500",
                p99,
                "ms",
                target="<= 20",
                ceiling="ceiling.http.empty.p99@500",
            )
        )
        print(
            f"[reporting] queries p50 {p50:.1f} ms p99 {p99:.1f} ms ({errors} errors; {cpu})",
            flush=True,
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=None, help="events to load")
    parser.add_argument("--quick", action="store_true", help="100,000 events, shorter runs")
    args = parser.parse_args()
    ctx = Context(quick=args.quick)
    figures = asyncio.run(run(ctx, args.events))
    for f in figures:
        ratio = ""
        if f.ceiling:
            base = next((g.value for g in figures if g.name == f.ceiling), None)
            ratio = f"  ({f.value / base:.2f}x {f.ceiling})" if base else ""
        print(f"{f.name:36} {f.value:>12,.1f} {f.unit:10} {f.target or '':10}{ratio}")
    print(json.dumps([f.as_dict() for f in figures]))


if __name__ == "__main__":
    main()
