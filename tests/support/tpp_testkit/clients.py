"""HTTP clients of a service (in process or over a loopback socket) with development tokens."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from tpp_plumbing.settings import HttpSettings
from tpp_plumbing.web.auth import Role, dev_headers


def auth_headers(role: Role | str, organizer_id: uuid.UUID | str | None = None) -> dict[str, str]:
    """``Authorization: Bearer`` with a development token of ``role`` (and organizer)."""
    return dev_headers(role, organizer_id)


@dataclass
class Service:
    """A service running in this process: its app, HTTP client (as an operator) and runtime."""

    app: FastAPI
    http: httpx.AsyncClient
    _clients: dict[tuple[str, str | None], httpx.AsyncClient] = field(default_factory=dict)

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    def as_role(
        self, role: Role | str | None, organizer_id: uuid.UUID | str | None = None
    ) -> httpx.AsyncClient:
        """A client of this service sending a token of ``role`` (None: no token at all)."""
        key = (str(role) if role is not None else "", str(organizer_id) if organizer_id else None)
        client = self._clients.get(key)
        if client is None:
            headers = auth_headers(role, organizer_id) if role is not None else {}
            client = service_client(self.app, headers=headers, base_url=str(self.http.base_url))
            self._clients[key] = client
        return client

    async def aclose(self) -> None:
        """Close every client of this service."""
        for client in (self.http, *self._clients.values()):
            await client.aclose()


def service_client(
    app: FastAPI,
    *,
    role: Role | str | None = Role.OPERATOR,
    headers: dict[str, str] | None = None,
    base_url: str = "http://service",
    **kwargs: Any,
) -> httpx.AsyncClient:
    """An in-process client of ``app`` carrying a development token of ``role``."""
    if headers is None:
        headers = auth_headers(role) if role is not None else {}
    transport = httpx.ASGITransport(app=app, **kwargs)
    return httpx.AsyncClient(transport=transport, base_url=base_url, headers=headers)


def free_port() -> int:
    """A loopback TCP port nothing listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serving(app: Any, http: HttpSettings | None = None) -> AsyncIterator[str]:
    """An (already started) app over a real loopback socket, under uvicorn with the edge's
    protocol as ``tpp_plumbing.serve`` runs it (``http``: its limits); yields the base URL."""
    import uvicorn
    from tpp_plumbing.web.edge import protocol_class

    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
        access_log=False,
        http=protocol_class(http or HttpSettings()),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not server.started:
        if task.done() or loop.time() > deadline:
            raise RuntimeError("uvicorn did not start")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
