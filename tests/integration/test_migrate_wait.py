"""deploy/migrate.py --wait: migrations start once PostgreSQL answers over TCP, not before."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import time
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy.engine import make_url
from tpp_testkit import Infrastructure

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def load_migrate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_migrate", ROOT / "deploy" / "migrate.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def test_waits_for_a_server_that_starts_listening_later(
    infrastructure: Infrastructure,
) -> None:
    """The compose race: the port refuses connections for a while (the init server listens
    on the socket only), then the real server answers."""
    real = make_url(infrastructure.admin_url)
    port = free_port()
    late = real.set(port=port).render_as_string(hide_password=False)

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(real.host, real.port)
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    waiting = asyncio.create_task(load_migrate().wait_for_database(late, 30))
    await asyncio.sleep(1.0)
    assert not waiting.done(), "refused connections are waited out, not an error"
    server = await asyncio.start_server(forward, "127.0.0.1", port)
    try:
        started = time.monotonic()
        await asyncio.wait_for(waiting, 15)
        assert time.monotonic() - started < 15
    finally:
        server.close()
        await server.wait_closed()


async def test_gives_up_with_the_reason_after_the_wait() -> None:
    url = f"postgresql+asyncpg://postgres:postgres@127.0.0.1:{free_port()}/postgres"

    with pytest.raises(TimeoutError, match="did not answer in 1 s"):
        await load_migrate().wait_for_database(url, 1)
