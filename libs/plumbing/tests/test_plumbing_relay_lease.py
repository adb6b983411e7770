"""A relay whose lock session breaks in any of asyncpg's ways knows it lost its lock."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from tpp_plumbing.messaging.publish import LeadLostError
from tpp_plumbing.messaging.relay import OutboxRelay
from tpp_plumbing.settings import KafkaSettings


class BrokenSession:
    """A connection whose next query fails with ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def fetchval(self, *_: Any, **__: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InterfaceError("connection is closed"),
        # asyncpg's state machine, e.g. a protocol left mid-query by a cancelled wait.
        asyncpg.InternalClientError("cannot switch to state 15"),
        ConnectionResetError(),
        TimeoutError(),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_a_broken_lock_session_is_a_lost_lead(error: Exception) -> None:
    relay = OutboxRelay(dsn="postgresql://unused/none", kafka=KafkaSettings())
    with pytest.raises(LeadLostError):
        await relay._prove(BrokenSession(error))  # type: ignore[arg-type]  # a stand-in session
