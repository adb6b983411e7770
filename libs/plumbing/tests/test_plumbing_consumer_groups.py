"""Consumer group settings: rebalance timings that fit together, static membership names."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from tpp_contracts.registry import SessionCreatedV1
from tpp_plumbing.db.engine import new_metadata
from tpp_plumbing.messaging.consumer import EventConsumer
from tpp_plumbing.messaging.inbox import Inbox, inbox_table
from tpp_plumbing.runtime import Runtime, Subscription
from tpp_plumbing.settings import ServiceSettings

URL = "postgresql+asyncpg://nobody:nothing@127.0.0.1:1/nowhere"  # never connected to


def consumer() -> EventConsumer:
    return EventConsumer(
        name="view",
        sessions=None,  # type: ignore[arg-type]  # wiring only: no database here
        inbox=Inbox(inbox_table(new_metadata())),
        handlers={SessionCreatedV1: _noop},
    )


async def _noop(*_: Any) -> None:
    return None


async def test_each_consumer_of_a_replica_gets_its_own_static_member_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TPP_SERVE_WORKER", "1")  # as tpp_plumbing.serve sets it
    settings = ServiceSettings(database_url=URL, consumer_instance_id="enrollment-2")
    runtime = Runtime(settings, name="enrollment")
    try:
        runtime.subscribe([Subscription(consumer(), ["registry.sessions.v1"])])
        runtime.subscribe([Subscription(consumer(), ["registry.plans.v1"])])
        names = [r._group_instance_id for r in runtime.runners]
        assert names == ["enrollment-2-1-0", "enrollment-2-1-1"]
    finally:
        await runtime.stop()


async def test_giving_partitions_up_waits_for_in_flight_batches_within_the_rebalance_timeout() -> (
    None
):
    settings = ServiceSettings(database_url=URL, consumer_rebalance_timeout_ms=20_000)
    runtime = Runtime(settings, name="reporting")
    try:
        runtime.subscribe([Subscription(consumer(), ["registry.sessions.v1"])])
        [runner] = runtime.runners
        assert runner.revoke_wait_s <= 20 - 5  # room to commit and rejoin in time
    finally:
        await runtime.stop()
    with pytest.raises(ValidationError, match="consumer_session_timeout_ms"):
        ServiceSettings(
            database_url=URL,
            consumer_session_timeout_ms=30_000,
            consumer_rebalance_timeout_ms=20_000,
        )
