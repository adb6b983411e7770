"""What a bearer token costs per request: the same FastAPI route with and without auth.

    set -a; . deploy/local.env; set +a; uv run python bench/auth_cost.py

Calls the ASGI app directly (no sockets, no HTTP client), N requests each way, alternating
rounds; prints the median CPU time per request of each (process time: other work on a
shared machine does not count) and the difference. The token is the
same on every request (as one client's are), so after the first it is a cache hit; the
uncached figure is the verification alone (HS256), measured on fresh tokens.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from fastapi import FastAPI
from loadgen import asgi_scope
from tpp_plumbing.web.auth import AuthSettings, Operator, TokenVerifier, dev_token, install_auth
from tpp_plumbing.web.problems import install_problem_handlers

N = 5000
ROUNDS = 7


def build() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    install_auth(app, AuthSettings())

    @app.post("/open")
    async def open_route() -> dict[str, str]:
        return {"ok": "yes"}

    @app.post("/closed")
    async def closed_route(_: Operator) -> dict[str, str]:
        return {"ok": "yes"}

    return app


async def run(app: FastAPI, path: str, headers: list[tuple[bytes, bytes]]) -> float:
    scope = asgi_scope("POST", path, headers)
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    start = time.process_time()
    for _ in range(N):
        await app(dict(scope), receive, send)
    elapsed = (time.process_time() - start) / N
    assert set(status) == {200}, set(status)
    return elapsed


async def main() -> None:
    app = build()
    auth = [(b"authorization", f"Bearer {dev_token('operator')}".encode())]
    opened, closed = [], []
    for _ in range(ROUNDS):
        opened.append(await run(app, "/open", auth))
        closed.append(await run(app, "/closed", auth))
    verifier = TokenVerifier(AuthSettings())
    tokens = [dev_token("operator", subject=f"s{i}") for i in range(2000)]
    start = time.process_time()
    for token in tokens:
        verifier.verify_sync(token)
    uncached = (time.process_time() - start) / len(tokens)
    o, c = statistics.median(opened) * 1e6, statistics.median(closed) * 1e6
    print(f"route without auth {o:.1f} µs, with auth {c:.1f} µs: +{c - o:.1f} µs per request")
    print(f"first verification of a token (HS256, cache miss): {uncached * 1e6:.1f} µs")


if __name__ == "__main__":
    asyncio.run(main())
