"""A small HTTP/1.1 load generator for the benchmarks: open loop at a fixed rate, or closed loop.

Runs in the benchmark's own process (never the server's). It speaks just enough HTTP/1.1 over
keep-alive connections to drive our JSON APIs (responses with a Content-Length), so that the
generator itself costs little CPU on a 2-core machine; its CPU time is reported beside the
figures so that a reader can see what it took from the server.

Open loop: request ``i`` is due at ``start + i / rate``; its latency runs from that due time
to the end of its response, so a slow server cannot hide its queue (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import functools
import resource
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

#: Builds request ``i`` as raw bytes (see ``request``), and tells which kind it is.
RequestFactory = Callable[[int], tuple[str, bytes]]


@functools.cache
def operator_authorization() -> str:
    """``Bearer <token>`` of an operator's development token (TPP_AUTH_DEV_SECRET), made once.

    Every request of a run carries the same token, as one client's requests would: the
    services verify it once and find it in their token cache afterwards.
    """
    from tpp_plumbing.web.auth import dev_token

    return f"Bearer {dev_token('operator', subject='bench')}"


def asgi_scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The ASGI scope of one HTTP/1.1 request, for calling an app in process (no server)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }


def request(
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    host: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
    auth: bool = True,
) -> bytes:
    """The raw bytes of one keep-alive HTTP/1.1 request (with an operator's token if ``auth``)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if auth:
        lines.append(f"Authorization: {operator_authorization()}")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return head + (body or b"")


class _Connection(asyncio.Protocol):
    """One keep-alive connection: send a request, await its whole response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they quack the same.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._try_complete()

    def _try_complete(self) -> None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0 or self._waiter is None:
            return
        head = bytes(self._buffer[:end]).decode("latin-1")
        try:
            status = int(head[9:12])
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
        except ValueError:
            # Not a response we understand: drop the connection, count an error.
            waiter, self._waiter = self._waiter, None
            waiter.set_exception(ConnectionError(f"unparsable response: {head[:40]!r}"))
            if self.transport is not None:
                self.transport.close()
            return
        total = end + 4 + length
        if len(self._buffer) < total:
            return
        body = bytes(self._buffer[end + 4 : total])
        del self._buffer[:total]
        waiter, self._waiter = self._waiter, None
        if not waiter.done():
            waiter.set_result((status, body))

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self._waiter


async def _connect(host: str, port: int) -> _Connection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(_Connection, host, port)
    return protocol


@dataclass
class Result:
    """What a load run measured, per request kind."""

    seconds: float
    sent: int = 0
    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    errors: int = 0
    cpu_s: float = 0.0  # the generator's own CPU time
    bodies: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def completed(self) -> int:
        """Requests that got a response."""
        return sum(len(v) for v in self.latencies.values())

    @property
    def throughput(self) -> float:
        """Responses per second."""
        return self.completed / self.seconds if self.seconds else 0.0

    def ok(self, kind: str | None = None) -> int:
        """Responses with a 2xx status (of one kind, or all)."""
        return sum(
            n
            for (k, status), n in self.statuses.items()
            if 200 <= status < 300 and kind in {None, k}
        )

    def percentile(self, q: float, kind: str | None = None) -> float:
        """The q-quantile (0..1) of latencies in milliseconds (of one kind, or all)."""
        values = sorted(v for k, vs in self.latencies.items() if kind in {None, k} for v in vs)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(q * len(values)))] * 1000


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def open_loop(
    port: int,
    make: RequestFactory,
    *,
    rate: float,
    seconds: float,
    connections: int = 64,
    host: str = "127.0.0.1",
    keep_bodies: bool = False,
    drain_s: float = 10.0,
) -> Result:
    """Send ``rate`` requests per second for ``seconds``, on schedule, whatever the server does.

    A request waits for a free connection when all are busy (counted in its latency); at most
    ``connections`` are in flight, as a browser fleet behind a proxy would be.
    """
    pool: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await _connect(host, port))
    total = int(rate * seconds)
    result = Result(seconds=seconds)
    cpu0 = _cpu()

    async def one(kind: str, raw: bytes, due: float) -> None:
        conn = await pool.get()
        try:
            if conn.closed:
                conn = await _connect(host, port)
            status, body = await conn.send(raw)
        except (ConnectionError, OSError):
            result.errors += 1
            pool.put_nowait(await _connect(host, port))
            return
        pool.put_nowait(conn)
        result.latencies.setdefault(kind, []).append(now() - due)
        result.statuses[(kind, status)] += 1
        if keep_bodies or status >= 400:
            result.bodies.append((kind, body))

    pending: dict[asyncio.Task[None], tuple[str, float]] = {}
    start = now() + 0.05
    for i in range(total):
        due = start + i / rate
        delay = due - now()
        if delay > 0:
            await asyncio.sleep(delay)
        kind, raw = make(i)
        task = asyncio.create_task(one(kind, raw, due))
        pending[task] = (kind, due)
        task.add_done_callback(pending.pop)
        result.sent += 1
    if pending:
        await asyncio.wait(list(pending), timeout=drain_s)
    # Requests still unanswered count with the time they have waited so far (a lower bound).
    for task, (kind, due) in list(pending.items()):
        task.cancel()
        result.latencies.setdefault(kind, []).append(now() - due)
        result.statuses[(kind, 0)] += 1
    result.seconds = max(seconds, now() - start)
    result.cpu_s = _cpu() - cpu0
    await _close(pool)
    return result


async def closed_loop(
    port: int,
    make: RequestFactory,
    *,
    concurrency: int,
    seconds: float | None = None,
    count: int | None = None,
    host: str = "127.0.0.1",
    keep_bodies: bool = False,
) -> Result:
    """``concurrency`` clients sending back to back, for ``seconds`` or ``count`` requests."""
    assert seconds is not None or count is not None
    result = Result(seconds=0.0)
    counter = iter(range(count if count is not None else 1 << 62))
    cpu0 = _cpu()
    start = now()
    deadline = start + seconds if seconds is not None else float("inf")

    async def client() -> None:
        conn = await _connect(host, port)
        try:
            for i in counter:
                if now() >= deadline:
                    return
                kind, raw = make(i)
                sent = now()
                result.sent += 1
                try:
                    status, body = await conn.send(raw)
                except (ConnectionError, OSError):
                    result.errors += 1
                    conn = await _connect(host, port)
                    continue
                result.latencies.setdefault(kind, []).append(now() - sent)
                result.statuses[(kind, status)] += 1
                if keep_bodies or status >= 400:
                    result.bodies.append((kind, body))
        finally:
            if conn.transport is not None:
                conn.transport.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    result.seconds = now() - start
    result.cpu_s = _cpu() - cpu0
    return result


async def _close(pool: asyncio.Queue[_Connection]) -> None:
    while not pool.empty():
        conn = pool.get_nowait()
        if conn.transport is not None:
            conn.transport.close()


#: The clock of every measurement: uvloop's loop.time() only has millisecond resolution.
now = time.perf_counter
wall = now
