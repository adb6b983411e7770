"""An app under uvicorn in its own process group, as deploy/platform.sh serves the services."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tpp_plumbing.serve_process import RELAY_COMM

if TYPE_CHECKING:
    from harness import Context

ROOT = Path(__file__).resolve().parents[1]


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
        """The server's processes: the supervisor and its children (the workers and, in
        relay_mode "process", the relay process, part of the service's cost)."""
        found = [self.process.pid]
        for status in Path("/proc").glob("[0-9]*/status"):
            with contextlib.suppress(OSError):
                text = status.read_text()
                for line in text.splitlines():
                    if line.startswith("PPid:") and int(line.split()[1]) == self.process.pid:
                        found.append(int(status.parent.name))
        return found

    def worker_pids(self) -> list[int]:
        """The HTTP workers: the supervisor's children that ``tpp_plumbing.serve`` spawned
        (not multiprocessing's resource tracker) and that are not the relay process; the
        supervisor itself when it serves alone (one worker, no relay process)."""
        workers = []
        for pid in self.pids()[1:]:
            with contextlib.suppress(OSError):
                spawned = b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
                comm = Path(f"/proc/{pid}/comm").read_bytes().strip()
                if spawned and comm != RELAY_COMM:
                    workers.append(pid)
        return workers or [self.process.pid]

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
            if line and len(server.worker_pids()) >= workers:
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
