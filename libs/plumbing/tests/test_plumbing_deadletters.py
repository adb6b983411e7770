"""Poison classification, retry policy and dead-letter headers, without I/O."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from sqlalchemy.exc import DBAPIError
from tpp_contracts.envelope import encode, wrap
from tpp_contracts.registry import SessionCreatedV1
from tpp_plumbing.db.engine import new_metadata
from tpp_plumbing.messaging import deadletter
from tpp_plumbing.messaging.consumer import EventConsumer
from tpp_plumbing.messaging.inbox import Inbox, inbox_table
from tpp_plumbing.messaging.retry import RetryPolicy, error_name, is_infrastructure_error


def record(
    value: bytes | None, offset: int = 7, headers: Any = (), topic: str = "p.registry.sessions.v1"
) -> Any:
    return ConsumerRecord(
        topic=topic,
        partition=2,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=value,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=len(value or b""),
        headers=tuple(headers),
    )


def consumer(max_message_bytes: int = 1000) -> EventConsumer:
    async def never(*_: Any) -> None:
        raise AssertionError("no valid event here")

    return EventConsumer(
        name="test",
        sessions=None,  # type: ignore[arg-type]  # only poison and unknown types: no database
        inbox=Inbox(inbox_table(new_metadata())),
        handlers={SessionCreatedV1: never},
        max_message_bytes=max_message_bytes,
    )


def session_envelope(**data: Any) -> Any:
    base = {
        "session_id": str(uuid.uuid4()),
        "version": 1,
        "organizer_id": str(uuid.uuid4()),
        "title": "Rice breeding",
        "field": "agriculture_forestry",
        "year": 2030,
        "start_date": "2030-04-01",
        "end_date": "2030-04-20",
        "venue_city": "Changsha",
        "venue_country": "CN",
        "overseas": False,
        "capacity": 20,
        "languages": ["en"],
        "review_required": False,
        "description": None,
        "country_limit": None,
    }
    event = SessionCreatedV1.model_validate(base)
    envelope = wrap(event, source="/tests")
    return envelope.model_copy(update={"data": {**envelope.data, **data}})


async def test_poison_of_every_kind_is_reported_and_unknown_types_are_ignored() -> None:
    unknown = session_envelope().model_copy(update={"type": "tpp.registry.unheard.v1"})
    records = [
        record(b"\x00 not json", 1),
        record(b'{"specversion": "1.0"}', 2),
        record(encode(session_envelope(capacity="lots")), 3),
        record(encode(session_envelope(title="x" * 2000)), 4),
        record(None, 5),
        record(encode(unknown), 6),
    ]
    result = await consumer().apply(records)
    assert result.applied == 0
    assert result.ignored == 1
    reasons = {p.record.offset: p.reason for p in result.poisoned}
    assert set(reasons) == {1, 2, 3, 4, 5}
    assert reasons[1].startswith("not JSON")
    assert reasons[2].startswith("not a CloudEvents envelope")
    assert reasons[3] == f"invalid {SessionCreatedV1.type}: capacity: int_parsing"
    assert reasons[4].startswith("oversized: ")
    assert "lots" not in " ".join(reasons.values())


def test_retry_delays_double_up_to_the_cap_with_jitter() -> None:
    policy = RetryPolicy(max_attempts=5, backoff_s=0.5, backoff_max_s=3.0)
    for failures, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)]:
        delays = [policy.delay(failures) for _ in range(50)]
        assert all(0.8 * base <= d <= 1.2 * base for d in delays)


class FakeDriverError(Exception):
    """Stands for a driver's error class."""


def test_outages_are_told_apart_from_handler_errors() -> None:
    chained = RuntimeError("wrapped")
    chained.__cause__ = ConnectionRefusedError(111, "Connection refused")
    wrapped = DBAPIError("SELECT 1", None, FakeDriverError(), connection_invalidated=True)
    assert is_infrastructure_error(chained)
    assert is_infrastructure_error(wrapped)
    assert is_infrastructure_error(TimeoutError())
    assert not is_infrastructure_error(ValueError("row 'Ana Pérez' is invalid"))
    assert not is_infrastructure_error(DBAPIError("INSERT", None, FakeDriverError()))
    assert error_name(ValueError("Ana Pérez")) == "builtins.ValueError"


@pytest.mark.parametrize("kind", ["poison", "failed"])
def test_dead_letter_headers_say_where_from_and_why_and_keep_the_trace(kind: str) -> None:
    original = record(b"{}", 41, headers=[("traceparent", b"00-abc-def-01"), ("dlq-kind", b"x")])
    headers = dict(
        deadletter.dead_letter_headers(
            original, group="p.reporting", kind=kind, error="E" * 900, attempts=3
        )
    )
    assert headers["traceparent"] == b"00-abc-def-01"
    assert headers[deadletter.ORIGINAL_TOPIC] == b"p.registry.sessions.v1"
    assert headers[deadletter.ORIGINAL_PARTITION] == b"2"
    assert headers[deadletter.ORIGINAL_OFFSET] == b"41"
    assert headers[deadletter.KIND] == kind.encode()
    assert headers[deadletter.ATTEMPTS] == b"3"
    assert headers[deadletter.GROUP] == b"p.reporting"
    assert len(headers[deadletter.ERROR]) == deadletter.MAX_ERROR
    assert deadletter.dead_letter_topic("p.registry.sessions.v1") == "p.registry.sessions.v1.dlq"


def test_a_redriven_copy_drops_the_dead_letter_headers_and_says_where_it_comes_from() -> None:
    original = record(b"{}", 41, headers=[("traceparent", b"00-abc-def-01")])
    parked = record(
        b"{}",
        3,
        headers=deadletter.dead_letter_headers(
            original, group="g", kind="failed", error="e", attempts=5
        ),
        topic="p.registry.sessions.v1.dlq",
    )
    letter = deadletter.DeadLetter.from_record(parked)
    assert letter.original_topic == "p.registry.sessions.v1"
    assert dict(letter.redrive_headers()) == {
        "traceparent": b"00-abc-def-01",
        deadletter.REDRIVEN_FROM: b"p.registry.sessions.v1.dlq/2:3",
    }


def parked_copy(original: Any, **changes: Any) -> deadletter.DeadLetter:
    """``original`` as a consumer parks it, with some of the dead letter's fields changed."""
    headers = deadletter.dead_letter_headers(
        original, group="g", kind="poison", error="e", attempts=1
    )
    claimed = changes.pop("claims", None)
    if claimed is not None:
        headers = [
            (k, claimed.encode() if k == deadletter.ORIGINAL_TOPIC else v) for k, v in headers
        ]
    letter = deadletter.DeadLetter.from_record(
        record(original.value, 3, headers=headers, topic=original.topic + deadletter.SUFFIX)
    )
    return dataclasses.replace(letter, **changes)


def test_a_true_copy_of_the_original_passes_the_check() -> None:
    original = record(b'{"id": "e1"}', 41)
    assert parked_copy(original).mismatch(original) is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (
            {"claims": "p.enrollment.enrollments.v1"},
            "it claims to come from p.enrollment.enrollments.v1, but was parked on the"
            " dead-letter topic of p.registry.sessions.v1",
        ),
        ({"key": b"other"}, "its key differs from the original's at 2:41"),
        (
            {"value": b'{"id": "e2"}'},
            "its value differs from the original's at 2:41 (event e2, the original is e1)",
        ),
    ],
    ids=["another topic", "another key", "another value"],
)
def test_a_letter_that_is_not_a_copy_of_its_original_is_refused(
    changes: dict[str, Any], reason: str
) -> None:
    original = record(b'{"id": "e1"}', 41)
    assert parked_copy(original, **changes).mismatch(original) == reason


def test_a_letter_naming_no_record_is_refused() -> None:
    letter = parked_copy(record(b"{}", 41))
    assert letter.mismatch(None) == "p.registry.sessions.v1 has no record at 2:41"
    unnamed = dataclasses.replace(
        letter, headers={deadletter.ORIGINAL_TOPIC: letter.original_topic}
    )
    assert unnamed.mismatch(None) == "it names no original partition and offset"
