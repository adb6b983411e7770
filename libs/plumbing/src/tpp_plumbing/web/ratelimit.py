"""Per-principal rate limits on commands and imports: 429 problem details with Retry-After.

A principal is a token's subject, role and organizer. Its commands (POST, PUT, PATCH,
DELETE) are counted against ``TPP_HTTP_RATE_LIMIT_COMMANDS`` and its CSV imports (the
service's upload paths) against ``TPP_HTTP_RATE_LIMIT_IMPORTS`` too. Reads are not limited
here, nor requests without a valid token (the route answers them 401).

Each rate (``20/second``, ``600/minute``; several joined by ``;``) is a token bucket per
principal, in this worker's memory: ``N`` requests at once, then ``N`` per period. A service
of W workers lets a principal through up to W times the rate; a deployment wanting one count
per principal or per client address puts it in its ingress. A few lines rather than the
``limits`` package, whose in-memory moving window (locks, a timer thread) costs several
times a bucket per command (bench/RESULTS.md, "Figures behind the code").
"""

from __future__ import annotations

import itertools
import json
import math
import re
import time
from collections.abc import Collection
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Receive, Scope, Send

from tpp_plumbing.web.auth import principal_of
from tpp_plumbing.web.problems import PROBLEM_JSON

COMMANDS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_RATE = re.compile(r"\s*(\d+)\s*(?:/|per)\s*(second|minute|hour|day)s?\s*")
#: Principals a rate remembers; past it, the least recently active half is forgotten (they
#: start again with a full bucket).
MAX_KEYS = 10_000


@dataclass
class Rate:
    """``amount`` requests per ``period_s``, as a token bucket per key."""

    amount: int
    period_s: float
    setting: str
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __str__(self) -> str:
        unit = next(name for name, seconds in _PERIODS.items() if seconds == self.period_s)
        return f"{self.amount}/{unit}"

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``key`` may send (0: now)."""
        tokens = self._tokens(key, now)
        return 0.0 if tokens >= 1 else (1 - tokens) * self.period_s / self.amount

    def take(self, key: str, now: float) -> None:
        """Spend one of ``key``'s tokens (after ``wait`` said 0)."""
        tokens = self._tokens(key, now) - 1
        self._buckets.pop(key, None)  # to the end: the dict is in least recent use order
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > MAX_KEYS:
            # Forget the least recently active half (amortized: once per MAX_KEYS / 2 keys).
            for stale in list(itertools.islice(self._buckets, len(self._buckets) - MAX_KEYS // 2)):
                del self._buckets[stale]

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.amount), now))
        return min(float(self.amount), tokens + (now - at) * self.amount / self.period_s)


def parse_rates(spec: str, setting: str) -> list[Rate]:
    """``"20/second;600/minute"`` as rates; ``""``: none. ValueError on anything else."""
    rates = []
    for part in filter(str.strip, re.split(r"[;,]", spec)):
        match = _RATE.fullmatch(part)
        if match is None or int(match.group(1)) < 1:
            raise ValueError(f"{setting}: {part!r} is not a rate such as 20/second")
        rates.append(Rate(int(match.group(1)), _PERIODS[match.group(2)], setting))
    return rates


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
        self._commands = parse_rates(commands, "rate_limit_commands")
        self._imports = parse_rates(imports, "rate_limit_imports")
        self._upload_paths = frozenset(upload_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in COMMANDS:
            await self.app(scope, receive, send)
            return
        rates = self._commands
        if scope["path"] in self._upload_paths:
            rates = rates + self._imports
        principal = await principal_of(scope) if rates else None
        if principal is None:
            await self.app(scope, receive, send)
            return
        who = f"{principal.role}:{principal.organizer_id or ''}:{principal.subject}"
        now = time.monotonic()
        for rate in rates:
            wait = rate.wait(who, now)
            if wait > 0:
                await _refuse(send, rate, max(1, math.ceil(wait)))
                return
        for rate in rates:
            rate.take(who, now)
        await self.app(scope, receive, send)


async def _refuse(send: Send, rate: Rate, retry_after: int) -> None:
    body = json.dumps(
        {
            "type": "about:blank",
            "title": "Too many requests",
            "status": 429,
            "detail": f"more than {rate} from this caller: retry in {retry_after} s",
            "limit": rate.setting,
            "rate": str(rate),
        }
    ).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(retry_after).encode()),
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})


__all__ = ["COMMANDS", "Rate", "RateLimitMiddleware", "parse_rates"]
