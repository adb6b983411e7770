"""Per-principal rate limits on commands and imports: 429 problem details with Retry-After.

A principal is a token's subject, role and organizer. Its commands (POST, PUT, PATCH,
DELETE) are counted against ``TPP_HTTP_RATE_LIMIT_COMMANDS`` and its CSV imports (the
service's upload paths) against ``TPP_HTTP_RATE_LIMIT_IMPORTS`` too, in moving windows
(the ``limits`` package, in memory). The counts are per worker process: a service of N
workers lets a principal send up to N times the limit; a deployment wanting one count per
principal puts it in its ingress. Reads are not limited here, nor requests without a valid
token (the route answers them 401).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Collection

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from tpp_plumbing.auth import principal_of
from tpp_plumbing.problems import PROBLEM_JSON

COMMANDS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class RateLimitMiddleware:
    """Refuses a principal's commands past its rate with 429 before anything else runs."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        commands: str,
        imports: str = "",
        upload_paths: Collection[str] = (),
    ) -> None:
        self.app = app
        self._commands = _rates(commands, "rate_limit_commands")
        self._imports = _rates(imports, "rate_limit_imports")
        self._upload_paths = frozenset(upload_paths)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in COMMANDS:
            await self.app(scope, receive, send)
            return
        rates = list(self._commands)
        if scope["path"] in self._upload_paths:
            rates += self._imports
        principal = await principal_of(scope) if rates else None
        if principal is None:
            await self.app(scope, receive, send)
            return
        who = f"{principal.role}:{principal.organizer_id or ''}:{principal.subject}"
        refused = next(
            ((item, setting) for item, setting in rates if not self._limiter.test(item, who)),
            None,
        )
        if refused is None:
            for item, _ in rates:
                self._limiter.hit(item, who)
            await self.app(scope, receive, send)
            return
        item, setting = refused
        reset_at = self._limiter.get_window_stats(item, who).reset_time
        await _refuse(send, item, setting, max(1, math.ceil(reset_at - time.time())))


def _rates(spec: str, setting: str) -> list[tuple[RateLimitItem, str]]:
    return [(item, setting) for item in parse_many(spec)] if spec.strip() else []


async def _refuse(send: Send, item: RateLimitItem, setting: str, retry_after: int) -> None:
    body = json.dumps(
        {
            "type": "about:blank",
            "title": "Too many requests",
            "status": 429,
            "detail": f"more than {item} from this principal: retry in {retry_after} s",
            "limit": setting,
            "rate": str(item),
        }
    ).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(retry_after).encode()),
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})


__all__ = ["COMMANDS", "RateLimitMiddleware"]
