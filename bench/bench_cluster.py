"""Scale-out benchmark (issue 22): the platform on a three-node Kafka cluster, and on two
replicas, against one broker and one replica in the same run.

A three-node cluster (``deploy/stack.sh up kafka`` with ``TPP_KAFKA_BROKERS=3``, in a
temporary folder on free ports; topics with replication factor 3 and
``min.insync.replicas`` 2) runs beside the local stack's single broker. Runs alternate
between the two shapes, three pairs each, and every ratio is the median of the pairs':

- ``cluster.relay.{one_broker,three_brokers}``: ``OutboxRelay`` draining a backlog of
  enrollment events (``bench_relay.relay_rate``), and ``cluster.relay.ratio``.
- ``cluster.enroll.{one_broker,three_brokers}``: enrollment commands/s, 64 clients back to
  back, the service's relay publishing to that shape's Kafka (two servers, each on its own
  scratch database: one relay leads per database), and ``cluster.enroll.ratio``.
- ``cluster.cpu_per_command.{one_replica,two_replicas}``: server CPU (every process of the
  replicas) per enrollment command on one broker: one replica with 64 clients, or two
  replicas of the same service on one database with 32 clients each; and
  ``cluster.cpu_per_command.ratio`` (two over one).

- ``cluster.freshness.{one_broker,three_brokers}.*``: end-to-end freshness
  (``bench_freshness``: idle, and p50/p99 at 500 commands/s), enrollment and reporting served
  on one broker, then on the cluster.

``TPP_BENCH_CLUSTER_PARTS`` (``relay,enroll,freshness`` by default) runs some parts only.
On a shared machine the ratios are steadier than the rates.

    set -a; . deploy/local.env; set +a
    uv run python bench/run.py cluster
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from bench_enrollment import enroll_requests, seed
from bench_freshness import measure as freshness
from bench_relay import relay_rate
from harness import (
    ROOT,
    Context,
    Figure,
    Server,
    libpq,
    median_figure,
    scratch_database,
    scratch_topics,
    serve,
    service_env,
)
from loadgen import RequestFactory, closed_loop

NAME = "cluster"
TIME_BUDGET_S = 1500
PARTS = os.environ.get("TPP_BENCH_CLUSTER_PARTS", "relay,enroll,freshness").split(",")
REPEATS = 3
NODES = 3
SESSIONS = 400
CAPACITY = 40
#: Where to look for six free ports in a row (three nodes: client and controller port each).
PORT_RANGE = range(39_100, 39_900, 20)


def _free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports() -> int:
    for base in PORT_RANGE:
        if all(_free(base + i) for i in range(2 * NODES)):
            return base
    raise RuntimeError(f"no {2 * NODES} free ports in a row in {PORT_RANGE}")


def _stack(env: dict[str, str], *command: str) -> None:
    done = subprocess.run(  # noqa: S603 - our own script
        [str(ROOT / "deploy" / "stack.sh"), *command],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"stack.sh {' '.join(command)}: {done.stdout}{done.stderr}")


def _kill_leftovers(stack_dir: Path) -> None:
    for pid_file in (stack_dir / "kafka").glob("node-*/kafka.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text())
            if "kafka.Kafka" in Path(f"/proc/{pid}/cmdline").read_text():
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def cluster(ctx: Context) -> Iterator[dict[str, str]]:
    """A three-node cluster for the run; yields the environment that points at it."""
    folder = Path(tempfile.mkdtemp(prefix="tpp-bench-cluster-"))
    base = _free_ports()
    lines = []
    for line in (ROOT / "deploy" / "local.env").read_text().splitlines():
        if line.startswith("TPP_KAFKA_BOOTSTRAP="):
            line = f"TPP_KAFKA_BOOTSTRAP=127.0.0.1:{base}"
        # No PostgreSQL here (``up kafka``), but ``down`` looks for one: not the shared one.
        lines.append(line.replace(":55432/", f":{base + 2 * NODES}/"))
    lines += [f"TPP_KAFKA_CONTROLLER_PORT={base + 1}", f"TPP_KAFKA_BROKERS={NODES}"]
    env_file = folder / "local.env"
    env_file.write_text("\n".join(lines) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TPP_")}
    env |= {"TPP_STACK_ENV": str(env_file), "TPP_STACK_DIR": str(folder / "stack")}
    bootstrap = ",".join(f"127.0.0.1:{base + 2 * i}" for i in range(NODES))
    try:
        started = time.monotonic()
        _stack(env, "up", "kafka")
        print(f"  {NODES}-node cluster on {bootstrap} up in {time.monotonic() - started:.0f} s")
        yield ctx.env | {
            "TPP_KAFKA_BOOTSTRAP": bootstrap,
            "TPP_TOPIC_REPLICATION_FACTOR": "3",
            "TPP_TOPIC_MIN_INSYNC_REPLICAS": "2",
        }
    finally:
        try:
            _stack(env, "down")
        finally:
            _kill_leftovers(folder / "stack")
            shutil.rmtree(folder, ignore_errors=True)


async def _enroll(
    servers: list[Server], make: RequestFactory, seconds: float
) -> tuple[float, float]:
    """64 clients spread over ``servers``: commands/s, and server CPU ms per command."""
    cpu0 = sum(s.cpu_s() for s in servers)
    results = await asyncio.gather(
        *(
            closed_loop(s.port, make, concurrency=64 // len(servers), seconds=seconds)
            for s in servers
        )
    )
    cpu = sum(s.cpu_s() for s in servers) - cpu0
    ok = sum(r.ok() for r in results)
    completed = sum(r.completed for r in results)
    took = max(r.seconds for r in results)
    return ok / took, 1000 * cpu / max(1, completed)


@contextlib.asynccontextmanager
async def _enrollment_server(
    ctx: Context, url: str, prefix: str, label: str, env: dict[str, str] | None = None
) -> AsyncIterator[Server]:
    settings = service_env("enrollment", url, consumers_enabled=False, database_pool_size=20)
    settings |= env or {}
    settings["TPP_KAFKA_TOPIC_PREFIX"] = prefix
    async with serve(ctx, "tpp_enrollment.app:create_app", settings, label=label) as server:
        yield server


async def run(ctx: Context) -> list[Figure]:
    if shutil.which("java") is None:
        print("  no java: no cluster to measure")
        return []
    count = 20_000 if ctx.quick else 50_000
    seconds = 3.0 if ctx.quick else 6.0
    trainees = 10_000
    relay: dict[str, list[float]] = {"one": [], "three": []}
    enroll: dict[str, list[float]] = {"one": [], "three": []}
    cpu: dict[str, list[float]] = {"one": [], "two": []}
    fresh: list[Figure] = []
    with cluster(ctx) as cluster_env:
        three = Context(quick=ctx.quick, env=cluster_env, run_id=ctx.run_id)
        if "freshness" in PARTS:
            fresh += await freshness(ctx, "cluster.freshness.one_broker")
            fresh += await freshness(three, "cluster.freshness.three_brokers")
        if not {"relay", "enroll"} & set(PARTS):
            return fresh
        async with (
            scratch_topics(ctx) as prefix_one,
            scratch_topics(three) as prefix_three,
            scratch_database(ctx, "enrollment", "_cl1") as url_one,
            scratch_database(ctx, "enrollment", "_cl3") as url_three,
        ):
            for _ in range(REPEATS if "relay" in PARTS else 0):
                relay["one"].append(await relay_rate(libpq(url_one), ctx.kafka, prefix_one, count))
                relay["three"].append(
                    await relay_rate(libpq(url_three), three.kafka, prefix_three, count)
                )
                print(
                    f"  relay drain: one broker {relay['one'][-1]:.0f}/s,"
                    f" three brokers {relay['three'][-1]:.0f}/s",
                    flush=True,
                )
            if "enroll" not in PARTS:
                return fresh + _relay_figures(relay, count)
            sessions_one, trainees_one = await seed(url_one, SESSIONS, CAPACITY, trainees)
            sessions_three, trainees_three = await seed(url_three, SESSIONS, CAPACITY, trainees)
            make_one = enroll_requests(sessions_one, trainees_one, itertools.count())
            make_three = enroll_requests(sessions_three, trainees_three, itertools.count())
            cluster_kafka = {"TPP_KAFKA_BOOTSTRAP": cluster_env["TPP_KAFKA_BOOTSTRAP"]}
            async with (
                _enrollment_server(ctx, url_one, prefix_one, "cluster-one") as one,
                _enrollment_server(
                    ctx, url_three, prefix_three, "cluster-three", cluster_kafka
                ) as on_three,
            ):
                for server, make in ((one, make_one), (on_three, make_three)):
                    await closed_loop(server.port, make, concurrency=16, count=300)  # warm-up
                for _ in range(REPEATS):
                    rate_one, cpu_one = await _enroll([one], make_one, seconds)
                    rate_three, _ = await _enroll([on_three], make_three, seconds)
                    # The second replica runs only for its runs: its relay may lead and would
                    # publish the first's events out of the measured processes.
                    async with _enrollment_server(ctx, url_one, prefix_one, "cluster-two") as two:
                        await closed_loop(two.port, make_one, concurrency=16, count=300)
                        rate_two, cpu_two = await _enroll([one, two], make_one, seconds)
                    enroll["one"].append(rate_one)
                    enroll["three"].append(rate_three)
                    cpu["one"].append(cpu_one)
                    cpu["two"].append(cpu_two)
                    print(
                        f"  enroll: one broker {rate_one:.0f}/s ({cpu_one:.2f} ms CPU/command),"
                        f" three brokers {rate_three:.0f}/s, two replicas on one broker"
                        f" {rate_two:.0f}/s ({cpu_two:.2f} ms CPU/command)",
                        flush=True,
                    )

    return [
        *fresh,
        *_relay_figures(relay, count),
        median_figure("cluster.enroll.one_broker", enroll["one"], "commands/s"),
        median_figure(
            "cluster.enroll.three_brokers",
            enroll["three"],
            "commands/s",
            ceiling="cluster.enroll.one_broker",
            note="64 clients; relay on, publishing to the cluster",
        ),
        median_figure(
            "cluster.enroll.ratio", ratios(enroll["three"], enroll["one"]), "ratio", target=">= 0.7"
        ),
        median_figure("cluster.cpu_per_command.one_replica", cpu["one"], "ms"),
        median_figure(
            "cluster.cpu_per_command.two_replicas",
            cpu["two"],
            "ms",
            ceiling="cluster.cpu_per_command.one_replica",
            note="two replicas, one database, 32 clients each",
        ),
        median_figure(
            "cluster.cpu_per_command.ratio",
            ratios(cpu["two"], cpu["one"]),
            "ratio",
            target="<= 1.1",
        ),
    ]


def ratios(a: list[float], b: list[float]) -> list[float]:
    return sorted(x / y for x, y in zip(a, b, strict=True))


def _relay_figures(relay: dict[str, list[float]], count: int) -> list[Figure]:
    if not relay["one"]:
        return []
    return [
        median_figure("cluster.relay.one_broker", relay["one"], "events/s"),
        median_figure(
            "cluster.relay.three_brokers",
            relay["three"],
            "events/s",
            ceiling="cluster.relay.one_broker",
            note=f"replication 3, min.insync 2; backlog of {count} rows",
        ),
        median_figure(
            "cluster.relay.ratio", ratios(relay["three"], relay["one"]), "ratio", target=">= 0.7"
        ),
    ]
