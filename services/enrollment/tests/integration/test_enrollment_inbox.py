"""The session-view consumer's inbox on the real PostgreSQL: a registry event delivered again
is never handed to the projector, whatever the projector's own version check would do."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from aiokafka import ConsumerRecord
from tpp_contracts.envelope import Event, encode, wrap
from tpp_contracts.examples import example
from tpp_contracts.registry import SessionCapacityChangedV1, SessionPublishedV1
from tpp_contracts.topics import SESSIONS
from tpp_enrollment import consumers
from tpp_enrollment.service import SessionProjector
from tpp_enrollment.store import tables
from tpp_plumbing.db.engine import asyncpg_dsn, create_engine, session_factory
from tpp_plumbing.db.uow import UnitsOfWork
from tpp_plumbing.messaging.consumer import Applied
from tpp_plumbing.messaging.outbox import Outbox

pytestmark = pytest.mark.integration


def delivered(value: bytes, offset: int, event: Event) -> Any:
    """A record as the Kafka consumer hands it over."""
    key = event.key().encode()
    return ConsumerRecord(
        topic=SESSIONS.name,
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key),
        serialized_value_size=len(value),
        headers=(),
    )


async def test_a_registry_event_delivered_again_is_not_handed_to_the_projector(
    databases: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await databases.create("enrollment", "_inbox")
    handled: list[str] = []
    for name in ("on_session_details", "on_session_change"):
        real = getattr(SessionProjector, name)

        async def counted(self: Any, db: Any, event: Any, envelope: Any, real: Any = real) -> None:
            handled.append(envelope.type.split(".")[-2])
            await real(self, db, event, envelope)

        monkeypatch.setattr(SessionProjector, name, counted)
    engine = create_engine(url)
    sessions = session_factory(engine)
    outbox = Outbox(tables.outbox, source="/enrollment")
    [subscription] = consumers.subscriptions(sessions, UnitsOfWork(sessions, outbox))
    consumer = subscription.consumer
    session_id = uuid.uuid4()
    opened = example(SessionPublishedV1, session_id=session_id, version=1, capacity=2)
    raised = example(
        SessionCapacityChangedV1, session_id=session_id, version=2, capacity=3, previous_capacity=2
    )
    opened_bytes = encode(wrap(opened, source="/tests/registry"))
    raised_bytes = encode(wrap(raised, source="/tests/registry"))
    deliveries: list[list[tuple[bytes, Event]]] = [
        # The publication twice in one batch (a producer's retry), then each batch on its
        # own, committed before the next arrives.
        [(opened_bytes, opened), (opened_bytes, opened)],
        [(raised_bytes, raised)],
        [(raised_bytes, raised)],  # the same message again (a redelivery)
        [(opened_bytes, opened)],  # and an older one, later still
    ]
    results: list[Applied] = []
    offset = 0
    try:
        for batch in deliveries:
            records = []
            for value, event in batch:
                records.append(delivered(value, offset, event))
                offset += 1
            results.append(await consumer.apply(records))
    finally:
        await engine.dispose()
    assert results == [
        Applied(applied=1, duplicates=1),
        Applied(applied=1),
        Applied(duplicates=1),
        Applied(duplicates=1),
    ]
    assert handled == ["published", "capacity_changed"]  # each once, in order
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        inbox = await conn.fetch('SELECT event_type, "offset" FROM inbox_message ORDER BY 2')
        view = await conn.fetchrow(
            "SELECT capacity, version FROM session_view WHERE session_id = $1", session_id
        )
    finally:
        await conn.close()
    assert [(r["event_type"].split(".")[-2], r["offset"]) for r in inbox] == [
        ("published", 0),
        ("capacity_changed", 2),
    ]
    assert view is not None
    assert (view["capacity"], view["version"]) == (3, 2)
