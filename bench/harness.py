"""What every benchmark module shares: figures, the run context, scratch databases, servers.

A benchmark module (``bench/bench_<name>.py``) defines ``run(ctx: Context) -> list[Figure]``
(plain or ``async``); ``bench/run.py`` runs each module in its own process and prints and saves
their figures together. See bench/README.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from tpp_plumbing.db.throwaway import create_throwaway, drop_abandoned
from tpp_plumbing.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[1]

UPGRADE = ("upgrade", "head")


@dataclass
class Figure:
    """One measured figure.

    ``target`` is a comparison with the issue's target (``">= 1000"``, ``"<= 20"``); ``ceiling``
    names a figure of the same run (usually a ``ceiling.*`` one) that ``value`` is divided by
    to give ``ratio``; ``runs`` holds the value of each repetition when ``value`` is a median.
    """

    name: str
    value: float
    unit: str
    target: str | None = None
    ceiling: str | None = None
    runs: list[float] = field(default_factory=list)
    note: str = ""
    ratio: float | None = None  # filled in by run.py
    met: bool | None = None  # filled in by run.py

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


def median_figure(name: str, runs: Sequence[float], unit: str, **kwargs: Any) -> Figure:
    """A figure whose value is the median of its runs."""
    values = [float(v) for v in runs]
    value = statistics.median(values) if values else float("nan")  # not measured this time
    return Figure(name, value, unit, runs=values, **kwargs)


def meets(value: float, target: str) -> bool:
    """Whether a value meets a target written as ``">= 1000"`` or ``"<= 20"``."""
    op, _, number = target.partition(" ")
    bound = float(number)
    return value >= bound if op == ">=" else value <= bound


@dataclass
class Context:
    """What run.py hands a benchmark module."""

    quick: bool = False  # a short smoke run (make bench ARGS=--quick)
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def admin_url(self) -> str:
        """libpq URL of a PostgreSQL superuser of the local stack."""
        return self.env["TPP_PG_ADMIN_URL"]

    @property
    def kafka(self) -> KafkaSettings:
        """Kafka of the local stack, as its admin (TPP_KAFKA_*)."""
        return KafkaSettings.from_env(self.env)

    def service_url(self, service: str) -> str:
        """The SQLAlchemy URL of a service's own database (from deploy/local.env)."""
        return self.env[f"TPP_{service.upper()}_DATABASE_URL"]


# --- scratch databases -----------------------------------------------------------------------


def _replace_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@contextlib.asynccontextmanager
async def scratch_database(ctx: Context, service: str, label: str = "") -> AsyncIterator[str]:
    """A throwaway database owned by ``service``'s role, migrated to head; its SQLAlchemy URL.

    ``service=None``-like use (no migrations) is ``service="postgres"``: an empty database.
    """
    name = f"bench_{service}_{ctx.run_id}{label}"
    owner = "postgres" if service == "postgres" else service
    conn = await asyncpg.connect(ctx.admin_url)
    try:
        await drop_abandoned(conn)  # what killed runs left behind
        await create_throwaway(conn, name, owner)
    finally:
        await conn.close()
    if service == "postgres":
        url = _replace_database(ctx.admin_url, name)
    else:
        url = _replace_database(ctx.service_url(service), name)
        env = ctx.env | {f"TPP_{service.upper()}_DATABASE_URL": url}
        await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "alembic", "-c", f"services/{service}/alembic.ini", *UPGRADE],
            check=True,
            env=env,
            cwd=ROOT,
            capture_output=True,
        )
    try:
        yield url
    finally:
        conn = await asyncpg.connect(ctx.admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def libpq(url: str) -> str:
    """A SQLAlchemy asyncpg URL as a plain libpq URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


# --- servers ---------------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


#: How the benchmarks serve an app (the same for the services and the empty-endpoint ceiling).
WORKERS = int(os.environ.get("TPP_BENCH_WORKERS", "2"))
#: Benchmarks drive the services with one operator token: no per-principal rate limits.
NO_RATE_LIMITS = {"TPP_HTTP_RATE_LIMIT_COMMANDS": "", "TPP_HTTP_RATE_LIMIT_IMPORTS": ""}
UVICORN_FLAGS = ("--no-access-log", "--log-level", "warning", "--timeout-keep-alive", "30")


@dataclass
class Server:
    """A uvicorn server in its own process group."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def pids(self) -> list[int]:
        """The server's processes (the supervisor and its workers)."""
        found = [self.process.pid]
        for status in Path("/proc").glob("[0-9]*/status"):
            with contextlib.suppress(OSError):
                text = status.read_text()
                for line in text.splitlines():
                    if line.startswith("PPid:") and int(line.split()[1]) == self.process.pid:
                        found.append(int(status.parent.name))
        return found

    def rss_mb(self) -> list[float]:
        """Resident memory of each worker process (MiB); the supervisor if it has none."""
        sizes = []
        pids = self.pids()
        workers = pids[1:] or pids[:1]
        for pid in workers:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        sizes.append(int(line.split()[1]) / 1024)
        return sizes

    def cpu_s(self) -> float:
        """CPU seconds used so far by the server's processes."""
        return sum(self.cpu_by_pid().values())

    def cpu_by_pid(self) -> dict[int, float]:
        """CPU seconds used so far by each of the server's processes."""
        ticks = os.sysconf("SC_CLK_TCK")
        used = {}
        for pid in self.pids():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                used[pid] = (int(fields[11]) + int(fields[12])) / ticks
        return used


@contextlib.asynccontextmanager
async def serve(
    ctx: Context,
    app: str,
    env: dict[str, str],
    *,
    workers: int = WORKERS,
    factory: bool = True,
    label: str = "server",
    app_dir: str | None = None,
) -> AsyncIterator[Server]:
    """Run ``app`` (``module:attr``) under uvicorn (``tpp_plumbing.serve``: each worker on its
    own SO_REUSEPORT socket) in its own process group until the block ends."""
    port = free_port()
    log = ROOT / "bench" / "results" / f"{label}.log.tmp"
    log.parent.mkdir(parents=True, exist_ok=True)
    # As deploy/platform.sh serves the services: a worker per SO_REUSEPORT socket.
    command = [sys.executable, "-m", "tpp_plumbing.serve", app]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers), *UVICORN_FLAGS]
    if factory:
        command.append("--factory")
    if app_dir is not None:
        command += ["--app-dir", app_dir]
    with log.open("wb") as out:
        # Popen returns at once; the server runs beside this event loop.
        process = subprocess.Popen(  # noqa: S603, ASYNC220 - our own command line
            command,
            env=NO_RATE_LIMITS | ctx.env | env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process, port, log)
    try:
        await _wait_ready(server, workers)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            await asyncio.to_thread(process.wait, 5)


#: How long a server may take to answer (a loaded machine may need more: TPP_BENCH_START_S).
START_S = float(os.environ.get("TPP_BENCH_START_S", "60"))


async def _wait_ready(server: Server, workers: int) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited: {server.log.read_text()[-3000:]}")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 5)
            writer.close()
            if line and len(server.pids()) >= (1 + workers if workers > 1 else 1):
                # Give every worker time to finish its startup before load arrives.
                await asyncio.sleep(1.0)
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"server did not start within {START_S:.0f} s")


def service_env(service: str, database_url: str, **settings: Any) -> dict[str, str]:
    """Environment for a service under benchmark: its scratch database and settings."""
    prefix = f"TPP_{service.upper()}_"
    env = {f"{prefix}DATABASE_URL": database_url}
    for key, value in settings.items():
        env[prefix + key.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def rounded(values: Iterable[float], digits: int = 1) -> list[float]:
    """Values rounded for the JSON file."""
    return [round(v, digits) for v in values]


# --- Kafka topics ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def scratch_topics(ctx: Context) -> AsyncIterator[str]:
    """The platform's topics under a fresh prefix (deleted afterwards), which the services'
    own Kafka principals may use as on the stack; yields the prefix."""
    from aiokafka.admin import AIOKafkaAdminClient
    from tpp_ops import acl as platform_acl
    from tpp_plumbing.messaging import acl

    prefix = f"bench-{ctx.run_id}-{uuid.uuid4().hex[:4]}-"
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "deploy/topics.py", "--prefix", prefix, "--wait", "30"],
        check=True,
        env=ctx.env,
        cwd=ROOT,
        capture_output=True,
    )
    bindings = (
        platform_acl.layout(prefix, platform_acl.principal_names(ctx.env))
        if ctx.kafka.uses_sasl
        else []
    )
    if bindings:
        await acl.grant(ctx.kafka, bindings)
    try:
        yield prefix
    finally:
        if bindings:
            await acl.revoke(ctx.kafka, bindings)
        admin = AIOKafkaAdminClient(**ctx.kafka.client_options())
        await admin.start()
        try:
            names = [t for t in await admin.list_topics() if t.startswith(prefix)]
            if names:
                await admin.delete_topics(names)
        finally:
            await admin.close()


# --- where the CPU went ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Cpu:
    name: str
    parent: int
    started: int  # clock ticks after boot: a pid used again starts later
    own: float  # utime + stime, seconds
    children: float  # cutime + cstime: its children that ended and were reaped


def cpu_reading() -> dict[int, _Cpu]:
    """Every process's CPU so far, by pid (for ``cpu_spent``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, _Cpu] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, _, rest = stat.read_text().rpartition(")")
            fields = rest.split()
            found[int(stat.parent.name)] = _Cpu(
                head.split("(", 1)[1],
                int(fields[1]),
                int(fields[19]),
                (int(fields[11]) + int(fields[12])) / ticks,
                (int(fields[13]) + int(fields[14])) / ticks,
            )
        except (OSError, IndexError, ValueError):
            continue
    return found


def cpu_spent(before: dict[int, _Cpu], after: dict[int, _Cpu]) -> dict[str, float]:
    """CPU seconds spent between two readings, summed by command name.

    A process that ended in between is no longer listed; its parent counts it among its
    children once it reaped it (a PostgreSQL backend: the postmaster, the same name). What
    it had spent before the first reading is taken off its parent's sum again, so that
    only the time between the readings counts.
    """
    spent: dict[str, float] = {}
    for pid, now in after.items():
        then = before.get(pid)
        # (Not by name: a kernel worker's name says what it is doing at the moment.)
        if then is not None and then.started == now.started:
            used = now.own - then.own + now.children - then.children
        else:  # started in between (or a new process with a reused pid)
            used = now.own + now.children
        spent[now.name] = spent.get(now.name, 0.0) + used
    for pid, then in before.items():
        parent, prior = after.get(then.parent), before.get(then.parent)
        if pid not in after and parent and prior and parent.started == prior.started:
            spent[parent.name] = spent.get(parent.name, 0.0) - then.own - then.children
    return spent


class CpuMeter:
    """Cores used by the server under test, PostgreSQL and everything else during a block."""

    def __init__(self, server: Server | None = None) -> None:
        self.server = server
        self.cores: dict[str, float] = {}

    def __enter__(self) -> CpuMeter:
        self._t0 = time.perf_counter()
        self._all0 = cpu_reading()
        self._server0 = self.server.cpu_s() if self.server else 0.0
        self._pids0 = self.server.cpu_by_pid() if self.server else {}
        self._self0 = time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        elapsed = time.perf_counter() - self._t0
        spent = cpu_spent(self._all0, cpu_reading())
        server = (self.server.cpu_s() - self._server0) if self.server else 0.0
        pids1 = self.server.cpu_by_pid() if self.server else {}
        self.by_process = [
            round((pids1[p] - self._pids0.get(p, 0.0)) / elapsed, 2) for p in sorted(pids1)
        ]
        load = time.process_time() - self._self0
        postgres = spent.get("postgres", 0.0)
        total = sum(spent.values())
        #: CPU seconds spent in the block; the Kafka broker is the machine's only Java process.
        self.seconds = {
            "server": server,
            "postgres": postgres,
            "loadgen": load,
            "kafka": spent.get("java", 0.0),
            "other": max(0.0, total - server - postgres - load),
        }
        self.cores = {k: v / elapsed for k, v in self.seconds.items() if k != "kafka"}

    def __str__(self) -> str:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in self.cores.items())
        return f"{parts} cores (server processes {self.by_process})"
