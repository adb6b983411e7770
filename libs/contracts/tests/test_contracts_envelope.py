"""The CloudEvents envelope: wrap, encode and decode, and what decode refuses."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tpp_contracts import (
    EVENT_TYPES,
    EnrollmentRejectedV1,
    Event,
    PoisonMessageError,
    SessionCreatedV1,
    TraineeRegisteredV1,
    decode,
    encode,
    encode_event,
    new_event_id,
    new_id,
    wrap,
)
from tpp_contracts.examples import example

MODELS = sorted(EVENT_TYPES.values(), key=lambda model: model.type)

aware_times = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))]),
)


def _envelope_bytes(**overrides: object) -> bytes:
    envelope = json.loads(encode(wrap(example(SessionCreatedV1), source="registry")))
    envelope.update(overrides)
    return json.dumps(envelope).encode()


@given(
    model=st.sampled_from(MODELS),
    source=st.text(min_size=1, max_size=30),
    correlation_id=st.none() | st.uuids(),
    causation_id=st.none() | st.uuids(),
    time=aware_times,
)
def test_wrap_encode_decode_gives_back_the_event(
    model: type[Event],
    source: str,
    correlation_id: uuid.UUID | None,
    causation_id: uuid.UUID | None,
    time: datetime,
) -> None:
    event = example(model)
    envelope = wrap(
        event, source=source, correlation_id=correlation_id, causation_id=causation_id, time=time
    )
    decoded = decode(encode(envelope))
    assert decoded.event == event
    assert type(decoded.event) is model
    assert decoded.envelope == envelope


@given(
    model=st.sampled_from(MODELS),
    source=st.text(min_size=1, max_size=30),
    event_id=st.uuids(),
    correlation_id=st.uuids(),
    causation_id=st.none() | st.uuids(),
    time=aware_times,
    reason=st.text(min_size=1, max_size=200),
)
def test_encode_event_writes_exactly_what_the_envelope_model_writes(
    model: type[Event],
    source: str,
    event_id: uuid.UUID,
    correlation_id: uuid.UUID,
    causation_id: uuid.UUID | None,
    time: datetime,
    reason: str,
) -> None:
    # Free text, where a model has any, to exercise the escaping of both encoders.
    free_text = model.model_fields.get("reason")
    if free_text is not None and free_text.annotation in (str, str | None):
        event = example(model, reason=reason)
    else:
        event = example(model)
    attributes: dict[str, Any] = {
        "source": source,
        "correlation_id": correlation_id,
        "causation_id": causation_id,
        "time": time,
    }
    expected = encode(wrap(event, event_id=event_id, **attributes))
    assert encode_event(event, event_id=event_id, **attributes) == expected


@given(reason=st.text(min_size=1, max_size=2000))
def test_free_text_survives_the_round_trip(reason: str) -> None:
    event = example(EnrollmentRejectedV1, reason=reason)
    assert decode(encode(wrap(event, source="enrollment"))).event == event


def test_envelope_attributes() -> None:
    event = example(EnrollmentRejectedV1)
    causation = uuid.uuid4()
    envelope = wrap(event, source="enrollment", causation_id=causation)
    assert envelope.specversion == "1.0"
    assert envelope.type == "tpp.enrollment.enrollment.rejected.v1"
    assert envelope.subject == str(event.enrollment_id)
    assert envelope.correlationid == envelope.id  # a new conversation starts with this event
    assert envelope.causationid == causation
    assert envelope.schemaversion == 1
    assert envelope.time.tzinfo is not None


def test_an_unknown_type_decodes_without_an_event() -> None:
    raw = _envelope_bytes(type="tpp.registry.session.teleported.v9", data={"anything": [1, 2]})
    decoded = decode(raw)
    assert decoded.event is None
    assert decoded.envelope.type == "tpp.registry.session.teleported.v9"


def test_unknown_envelope_attributes_are_ignored() -> None:
    decoded = decode(_envelope_bytes(traceparent="00-abc-def-01", dataschema="urn:x"))
    assert decoded.event == example(SessionCreatedV1)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "empty message value"),
        (b"", "not JSON"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a CloudEvents envelope"),
        (b'{"type": "tpp.registry.session.created.v1"}', "not a CloudEvents envelope"),
        (_envelope_bytes(specversion="0.3"), "not a CloudEvents envelope: specversion"),
        (_envelope_bytes(time="2026-05-11T08:30:00"), "not a CloudEvents envelope: time"),
        (_envelope_bytes(data=[1]), "not a CloudEvents envelope: data"),
        (
            _envelope_bytes(
                data={**example(SessionCreatedV1).model_dump(mode="json"), "capacity": 0}
            ),
            "invalid tpp.registry.session.created.v1: capacity",
        ),
        (_envelope_bytes(data={}), "invalid tpp.registry.session.created.v1: session_id: missing"),
    ],
)
def test_poison_messages_raise_with_a_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(PoisonMessageError) as caught:
        decode(raw)
    assert caught.value.reason.startswith(reason), caught.value.reason


def test_a_poison_reason_never_quotes_the_data() -> None:
    data = example(TraineeRegisteredV1).model_dump(mode="json")
    raw = encode(wrap(example(TraineeRegisteredV1), source="enrollment"))
    tampered = json.loads(raw)
    tampered["data"] = {**data, "country": "Jane Doe, passport E1234567"}
    with pytest.raises(PoisonMessageError) as caught:
        decode(json.dumps(tampered).encode())
    assert "Jane" not in caught.value.reason
    assert "country" in caught.value.reason


@given(st.binary())
def test_any_bytes_either_decode_or_are_poison(raw: bytes) -> None:
    assert _poison_reason(raw) != ""


@given(
    st.dictionaries(
        st.sampled_from(["id", "source", "type", "time", "correlationid", "data", "specversion"]),
        st.none() | st.integers() | st.text(max_size=5) | st.just({}),
    )
)
def test_any_json_object_either_decodes_or_is_poison(message: dict[str, object]) -> None:
    assert _poison_reason(json.dumps(message).encode()) != ""


def _poison_reason(raw: bytes) -> str | None:
    """None when the message decodes, else the poison reason; any other error propagates."""
    try:
        decode(raw)
    except PoisonMessageError as error:
        return error.reason
    return None


@pytest.mark.parametrize("make", [new_event_id, new_id])
def test_ids_are_uuid7_and_later_ones_sort_after(make: Callable[[], uuid.UUID]) -> None:
    first = make()
    time.sleep(0.002)
    later = [make() for _ in range(100)]
    assert {first.version, *(i.version for i in later)} == {7}
    assert all(first.bytes < i.bytes for i in later)  # the index takes them at its end
    # Milliseconds since the epoch in the first 48 bits: the id says when it was made.
    made = datetime.fromtimestamp(int.from_bytes(first.bytes[:6], "big") / 1000, UTC)
    assert abs((datetime.now(UTC) - made).total_seconds()) < 5
    assert wrap(example(SessionCreatedV1), source="registry").id.version == 7
