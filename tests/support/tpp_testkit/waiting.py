"""Polling with a deadline: the ``eventually`` fixture."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


async def _eventually(
    check: Callable[[], Awaitable[T | None]], *, within: float = 20.0, what: str = "condition"
) -> T:
    """Poll ``check`` until it returns a truthy value or the deadline passes (then fail)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: T | None = None
    while loop.time() < deadline:
        try:  # a check that itself hangs fails at the deadline too
            last = await asyncio.wait_for(check(), max(deadline - loop.time(), 0.1))
        except TimeoutError:
            pytest.fail(f"{what}: a check was still waiting after {within}s")
        if last:
            return last
        await asyncio.sleep(0.1)
    pytest.fail(f"{what} not reached within {within}s (last: {last!r})")


@pytest.fixture
def eventually() -> Callable[..., Awaitable[Any]]:
    """``await eventually(check, within=..., what=...)``: poll until truthy, else fail."""
    return _eventually
