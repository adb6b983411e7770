"""The fault-injection suite: ``python -m tests.chaos [--cluster] [--long] [--seed N] [--keep]``.

Starts its own PostgreSQL, Kafka and the three services (``.chaos/``, other ports than the
local stack), drives enrollments and registry changes through the HTTP APIs while killing
services, restarting the broker and PostgreSQL, delivering duplicates and injecting poison;
then checks that nothing was lost, counted twice or left stuck, prints the counts and exits
1 on any failure. The short form (default) runs in CI; ``--long`` is the full run.

``--cluster``: three Kafka nodes (replication 3, two in sync), two replicas of every service
(``.chaos-cluster/``), load spread over the replicas by a balancing client; the faults are
kill -9 of the node leading most partitions, kill -9 of one replica of each service, a
rolling restart of every replica and a PostgreSQL restart (plus duplicates and poison). The
load keeps going until the last fault healed; the share of client requests that failed
during the rolling restart must stay under 1 %.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass

from tests.chaos.faults import Faults, plan
from tests.chaos.load import Load
from tests.chaos.stack import ChaosStack, log
from tests.chaos.verify import verify

YEAR = 2091


@dataclass(frozen=True)
class Form:
    commands: int
    concurrency: int
    kills_per_service: int
    broker: int
    postgres: int
    duplicates: int
    poison: int
    duplicate_sample: int
    organizers: int
    sessions: int
    trainees: int
    rolling: int = 0


SHORT = Form(5_000, 16, 1, 1, 1, 2, 2, 300, 3, 40, 80)
LONG = Form(100_000, 48, 3, 1, 1, 6, 3, 2_000, 6, 120, 800)
# Poison is left to the one-broker form here: the cluster changes nothing of its handling.
CLUSTER_SHORT = Form(2_000, 16, 1, 1, 1, 1, 0, 300, 3, 40, 80, rolling=1)
CLUSTER_LONG = Form(100_000, 48, 2, 2, 1, 4, 2, 2_000, 6, 120, 800, rolling=2)
#: Replicas of every service, and workers of each replica, in the cluster form (two
#: single-worker replicas serve with as many processes as one two-worker service).
CLUSTER_REPLICAS = 2
CLUSTER_WORKERS = 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--long", action="store_true", help="100,000 commands, 3 kills each")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="three Kafka nodes, two replicas of every service, a rolling restart",
    )
    parser.add_argument(
        "--static-membership",
        action="store_true",
        help="with --cluster: static consumer group membership, named after each replica",
    )
    parser.add_argument("--commands", type=int, help="override the number of commands")
    parser.add_argument("--seed", type=int, help="random seed (printed; default: the time)")
    parser.add_argument("--keep", action="store_true", help="leave the chaos stack running")
    args = parser.parse_args()
    if args.cluster:
        form = CLUSTER_LONG if args.long else CLUSTER_SHORT
    else:
        form = LONG if args.long else SHORT
    if args.commands:
        form = Form(args.commands, *list(form.__dict__.values())[1:])
    seed = args.seed if args.seed is not None else int(time.time())
    started = time.monotonic()
    if args.cluster:
        stack = ChaosStack(
            cluster=True,
            replicas=CLUSTER_REPLICAS,
            workers=CLUSTER_WORKERS,
            static_membership=args.static_membership,
        )
    else:
        stack = ChaosStack()
    shape = f"{stack.nodes} Kafka node(s), {stack.replicas} replica(s) of each service"
    if stack.static_membership:
        shape += " (static group membership)"
    log(
        f"{'long' if args.long else 'short'} form, {form.commands:,} commands, {shape}, seed {seed}"
    )
    try:
        stack.up(fresh=True)
        stack.apply_to_this_process()
        for name in stack.services:
            stack.start(name)
        for name in stack.services:
            stack.wait_ready(name)
        failures, counts = asyncio.run(run(stack, form, random.Random(seed)))
    finally:
        if not args.keep:
            log("stopping the chaos stack")
            stack.down()
    counts["seed"] = seed
    counts["duration_s"] = round(time.monotonic() - started, 1)
    (stack.home / "latest.json").write_text(json.dumps(counts, indent=2, default=str) + "\n")
    print(json.dumps(counts, indent=2, default=str), flush=True)
    summary = ", ".join(
        f"{k} {counts[k]:,}"
        for k in (
            "confirmed",
            "published",
            "applied",
            "duplicates_delivered",
            "duplicates_applied",
            "lost",
        )
    )
    if failures:
        log(f"FAILED ({len(failures)} checks): {summary}")
        for failure in failures:
            log(f"  - {failure}")
        return 1
    log(f"PASSED in {counts['duration_s']:.0f} s: {summary}")
    return 0


async def run(
    stack: ChaosStack, form: Form, rng: random.Random
) -> tuple[list[str], dict[str, object]]:
    load = Load(stack, commands=form.commands, concurrency=form.concurrency, rng=rng, year=YEAR)
    await load.setup(organizers=form.organizers, sessions=form.sessions, trainees=form.trainees)
    faults = Faults(stack, load, rng, duplicate_sample=form.duplicate_sample)
    schedule = plan(
        rng,
        kills_per_service=form.kills_per_service,
        broker=form.broker,
        postgres=form.postgres,
        duplicates=form.duplicates,
        poison=form.poison,
        rolling=form.rolling,
    )
    log("fault plan: " + ", ".join(f"{kind}@{point:.0%}" for point, kind in schedule))
    faults_done = asyncio.Event()
    if stack.replicas > 1:
        load.keep_going_until = faults_done  # steady load until the last fault healed

    async def run_faults() -> None:
        try:
            await faults.run(schedule)
        finally:
            faults_done.set()

    fault_task = asyncio.create_task(run_faults())
    try:
        took = await load.run()
        await fault_task  # every fault healed
    finally:
        fault_task.cancel()
        await load.close()
    log(f"load done: {load.tally.commands:,} commands in {took:.0f} s; checking")
    verdict = await verify(stack, load, faults.log)
    verdict.counts["load_s"] = round(took, 1)
    verdict.counts["faults"] = [f"{kind} ({healed:.1f} s)" for kind, healed in faults.log.events]
    verdict.counts["kills"] = {name: s.kills for name, s in stack.services.items()}
    verdict.counts["shape"] = {
        "kafka_nodes": stack.nodes,
        "replicas": stack.replicas,
        "static_membership": stack.static_membership,
    }
    return verdict.failures, verdict.counts


if __name__ == "__main__":
    sys.exit(main())
