"""The HTTP edge over a real socket: header caps, slow clients timed out, a concurrency cap.

The app is a bare ASGI app reading the whole body; it runs under uvicorn with the protocol
``tpp_plumbing.serve`` gives it (``tpp_testkit.serving``), with small limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from tpp_plumbing.web.edge import HttpSettings
from tpp_testkit import serving

LIMITS = HttpSettings(
    max_header_bytes=8192,
    max_header_count=50,
    header_timeout_s=1.0,
    body_timeout_s=1.0,
    max_concurrency=1000,
    rate_limit_commands="",
    rate_limit_imports="",
)


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers 200 with the length of the body it read."""
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = json.dumps({"received": size}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def server(limits: HttpSettings = LIMITS) -> AsyncIterator[tuple[str, int]]:
    async with serving(echo, limits) as url:
        parts = urlsplit(url)
        assert parts.hostname is not None
        assert parts.port is not None
        yield parts.hostname, parts.port


async def answer(
    reader: asyncio.StreamReader, within: float = 10.0
) -> tuple[int, dict[str, str], bytes]:
    """The status, headers and body of the response on ``reader`` (the server closes after)."""
    raw = await asyncio.wait_for(reader.read(), within)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), raw[:200]
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


async def test_a_header_line_over_the_cap_is_refused_431() -> None:
    async with server() as (host, port):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
        await writer.drain()
        status, headers, body = await answer(reader)
        writer.close()
    assert status == 431
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    problem = json.loads(body)
    assert problem["status"] == 431
    assert problem["max_bytes"] == 8192


async def test_a_header_of_16_mb_is_not_read_to_its_end() -> None:
    async with server() as (host, port):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: ")
        sent = 0
        with contextlib.suppress(ConnectionError):
            while sent < 16 * 2**20:
                writer.write(b"a" * 65536)
                await asyncio.wait_for(writer.drain(), 10)
                sent += 65536
            writer.write(b"\r\n\r\n")
            await writer.drain()
        try:
            status, _, _ = await answer(reader)
        except ConnectionError:
            status = 0  # reset: the server closed with the rest of the header unread
        writer.close()
    assert status in (431, 0)
    assert sent < 16 * 2**20, "the server read the whole 16 MB header"


async def test_more_header_fields_than_the_cap_are_refused_431() -> None:
    async with server() as (host, port):
        reader, writer = await asyncio.open_connection(host, port)
        fields = b"".join(b"X-F%d: v\r\n" % i for i in range(60))
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n" + fields + b"\r\n")
        status, _, body = await answer(reader)
        writer.close()
    assert status == 431
    assert json.loads(body)["max_count"] == 50


async def test_requests_within_the_caps_are_served_on_a_kept_alive_connection() -> None:
    async with server() as (host, port):
        reader, writer = await asyncio.open_connection(host, port)
        for _ in range(3):
            writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert status_line.startswith(b"HTTP/1.1 200"), status_line
            assert await reader.readexactly(len(b'{"received": 5}')) == b'{"received": 5}'
        await asyncio.sleep(1.5)  # idle past the header timeout: kept alive (keep-alive's 5 s)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        await writer.drain()
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(
            b"HTTP/1.1 200"
        )
        writer.close()


async def test_fifty_clients_sending_headers_a_byte_at_a_time_are_cut_off() -> None:
    async with server() as (host, port):
        clients = [await asyncio.open_connection(host, port) for _ in range(50)]
        started = time.monotonic()

        async def trickle(writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                for byte in b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 100:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.2)

        trickles = [asyncio.create_task(trickle(w)) for _, w in clients]
        answers = await asyncio.gather(*(answer(r, within=10) for r, _ in clients))
        elapsed = time.monotonic() - started
        for task in trickles:
            task.cancel()
        for _, writer in clients:
            writer.close()
    assert {status for status, _, _ in answers} == {408}
    assert json.loads(answers[0][2])["limit"] == "header_timeout_s"
    assert elapsed < 5, f"slow clients held for {elapsed:.1f} s (header timeout 1 s)"


async def test_a_body_sent_too_slowly_is_answered_408() -> None:
    async with server() as (host, port):
        reader, writer = await asyncio.open_connection(host, port)
        started = time.monotonic()
        writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n0123456789")
        await writer.drain()
        status, headers, body = await answer(reader)
        elapsed = time.monotonic() - started
        writer.close()
    assert status == 408
    assert headers["connection"] == "close"
    assert json.loads(body)["limit"] == "body_timeout_s"
    assert elapsed < 5


async def test_past_the_concurrency_cap_requests_get_503_with_retry_after() -> None:
    limits = LIMITS.model_copy(update={"max_concurrency": 3, "header_timeout_s": 30.0})
    async with server(limits) as (host, port):
        idle = [await asyncio.open_connection(host, port) for _ in range(3)]
        reader, writer = await asyncio.open_connection(host, port)  # the fourth
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        await writer.drain()
        status, headers, body = await answer(reader)
        writer.close()
        for _, w in idle:
            w.close()
        await asyncio.sleep(0.2)  # the server sees them go
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        status_after, _, _ = await answer(reader)
        writer.close()
    assert status == 503
    assert headers["retry-after"] == "1"
    assert json.loads(body)["limit"] == "max_concurrency"
    assert status_after == 200
