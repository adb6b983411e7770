"""The load generator's HTTP client: balanced over replicas, retried with one idempotency key.

With several replicas of a service, the client balances as a load balancer would: each
request goes to the next replica in turn, and a refused connection (a replica that is down)
is tried at once on the others; only when every replica refuses is the request a failed try.
Every try is counted, and those that got no answer (a transport error after the balancer's
re-routing) or a 5xx are counted as failed, so that a fault's share of failed requests can be
read off (``Tally.requests`` / ``Tally.failed``).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from typing import Any

import httpx
from tpp_plumbing.web.auth import dev_token

from tests.chaos.answers import in_progress
from tests.chaos.stack import ChaosStack, log
from tests.chaos.tally import Tally


class StackClient:
    """Sends the load generator's requests to the chaos stack as a load balancer would, and
    retries them as a client would; counts every try in ``tally``."""

    def __init__(self, stack: ChaosStack, *, rng: random.Random, retry_window_s: float) -> None:
        self.stack = stack
        self.rng = rng
        self.retry_window_s = retry_window_s
        self.tally = Tally()
        self._client: httpx.AsyncClient | None = None
        self._unexpected = 0
        self._turn: dict[str, int] = {}

    def url(self, service: str, path: str) -> str:
        return f"{self.stack.services[service].url}{path}"

    def _bases(self, app: str) -> list[str]:
        """The replicas' base URLs in the order to try them: the next in turn first."""
        urls = [s.url for s in self.stack.replicas_of(app)]
        turn = self._turn.get(app, 0)
        self._turn[app] = turn + 1
        start = turn % len(urls)
        return urls[start:] + urls[:start]

    async def send(
        self,
        method: str,
        app: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One request through the balancer: the next replica in turn, the others when it
        refuses the connection. Counted in ``requests`` and, without an answer or with a 5xx,
        in ``failed``. Raises the transport error when no replica answered."""
        self.tally.requests += 1
        bases = self._bases(app)
        try:
            for i, base in enumerate(bases):
                try:
                    response = await self.client.request(
                        method, f"{base}{path}", json=json, headers=headers
                    )
                    break
                except httpx.ConnectError:
                    if i == len(bases) - 1:
                        raise
                    self.tally.rerouted += 1
        except httpx.TransportError as error:
            self.tally.fail(type(error).__name__)
            raise
        if response.status_code >= 500:
            self.tally.fail(str(response.status_code))
        return response

    @property
    def client(self) -> httpx.AsyncClient:
        assert self._client is not None
        return self._client

    async def call(
        self,
        method: str,
        service: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response | None:
        """One command (or read) with retries; the answer, or None when none came in time.

        POSTs carry one Idempotency-Key for all their tries. Retried: transport errors,
        5xx, and 409 "Request in progress" (the first try may have died with its process).
        """
        sent = dict(headers or {})
        if method == "POST":
            sent["Idempotency-Key"] = str(uuid.uuid4())
        deadline = time.monotonic() + self.retry_window_s
        delay = 0.1
        last: httpx.Response | None = None
        while True:
            self.tally.attempts += 1
            try:
                response = await self.send(method, service, path, json=json, headers=sent)
            except httpx.TransportError:
                response = None
            if response is not None:
                last = response
                if response.headers.get("idempotent-replayed") == "true":
                    self.tally.replayed += 1
                if response.status_code < 500 and not in_progress(response):
                    return response
            if time.monotonic() > deadline:
                return last
            self.tally.retries += 1
            await asyncio.sleep(delay * self.rng.uniform(0.5, 1.5))
            delay = min(delay * 2, 2.0)

    def unexpected(self, response: httpx.Response | None) -> None:
        """Log the first few unexpected answers (a 4xx here is a bug of the generator)."""
        self._unexpected += 1
        if self._unexpected <= 5:
            what = "no answer" if response is None else f"{response.status_code} {response.text}"
            log(f"unexpected answer: {what[:300]}")


def operator_token() -> str:
    """A bearer token of an operator, signed with the stack's development secret."""
    return f"Bearer {dev_token('operator', subject='chaos', ttl_s=12 * 3600)}"
