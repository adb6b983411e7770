"""Reporting's tolerant reader of the contract events, and the batch merge of projections."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from pydantic import ValidationError
from tpp_contracts import enrollment as en
from tpp_contracts import registry as rg
from tpp_contracts.envelope import EVENT_TYPES, encode, wrap
from tpp_contracts.examples import EXAMPLE_VALUES, example
from tpp_reporting import readers
from tpp_reporting.store.projection import Batch


def raw(event: Any, **envelope: Any) -> bytes:
    return encode(wrap(event, source="/test", **envelope))


def filled(model: Any) -> Any:
    """An example of ``model`` with its optional fields set too, where an example value fits."""
    optional: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if info.is_required() or name not in EXAMPLE_VALUES:
            continue
        try:
            example(model, **{name: EXAMPLE_VALUES[name]})
        except ValidationError:  # e.g. another event's status where this one has a Literal
            continue
        optional[name] = EXAMPLE_VALUES[name]
    return example(model, **optional)


@pytest.mark.parametrize("make", [example, filled], ids=["required", "optional"])
@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_contract_event_decodes_to_the_values_it_was_sent_with(
    event_type: str, make: Any
) -> None:
    event = make(EVENT_TYPES[event_type])
    wire = raw(event)
    decoded = readers.decode(wire)
    if event_type not in readers.KNOWN_TYPES:
        assert decoded is None
        return
    assert decoded is not None
    assert decoded.type == event_type
    sent = json.loads(wire)["data"]
    for name in decoded.data.__struct_fields__:
        # A mirror field its contract does not have (a shared mirror) must stay unset.
        assert msgspec.to_builtins(getattr(decoded.data, name)) == sent.get(name), name


@pytest.mark.parametrize("event_type", sorted(readers.KNOWN_TYPES))
def test_every_contract_field_is_read_or_listed_as_unread(event_type: str) -> None:
    contract = set(EVENT_TYPES[event_type].model_fields)
    mirror = msgspec.structs.fields(readers.mirror(event_type))
    read = {f.name for f in mirror} & contract
    unread = readers.UNREAD[event_type]
    assert contract - read - unread == set(), "read it in tpp_reporting.readers or add to UNREAD"
    assert read & unread == set()
    assert unread <= contract  # no stale entry
    # A field the mirror requires must be one every producer sends, else all would be poison.
    assert {f.name for f in mirror if f.required} <= contract


def test_unread_fields_are_listed_for_exactly_the_projected_types() -> None:
    assert set(readers.UNREAD) == readers.KNOWN_TYPES


def test_every_projected_event_type_is_a_contract_type() -> None:
    assert set(EVENT_TYPES) >= readers.KNOWN_TYPES
    assert rg.AnnualPlanSetV1.type in readers.KNOWN_TYPES
    assert rg.OrganizerUpdatedV1.type in readers.KNOWN_TYPES
    assert en.TraineeErasedV1.type in readers.KNOWN_TYPES


def test_unknown_types_and_newer_optional_fields_are_ignored() -> None:
    value = json.loads(raw(example(en.EvaluationSubmittedV1)))
    value["data"]["mood"] = "delighted"  # a field added by a newer producer
    value["brandnewattribute"] = 1
    decoded = readers.decode(json.dumps(value).encode())
    assert decoded is not None
    assert decoded.data.score == example(en.EvaluationSubmittedV1).score
    value["type"] = "tpp.enrollment.something.new.v1"
    assert readers.decode(json.dumps(value).encode()) is None


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda v: b"{not json", "not JSON"),
        (lambda v: json.dumps({"hello": "world"}).encode(), "envelope"),
        (lambda v: json.dumps(v | {"data": v["data"] | {"score": 9}}).encode(), "invalid"),
        (lambda v: json.dumps(v | {"data": v["data"] | {"country": "kenya"}}).encode(), "invalid"),
    ],
)
def test_bad_messages_are_poison_and_the_reason_shows_no_value(mutate: Any, reason: str) -> None:
    value = json.loads(raw(example(en.EvaluationSubmittedV1)))
    if "kenya" in str(mutate(value)):  # evaluations are counted without the country
        value = json.loads(raw(example(en.EnrollmentAcceptedV1)))
    with pytest.raises(readers.PoisonError) as caught:
        readers.decode(mutate(value))
    assert reason in str(caught.value)
    assert "kenya" not in str(caught.value)


def decoded(event: Any, **envelope: Any) -> readers.Event:
    result = readers.decode(raw(event, **envelope))
    assert result is not None
    return result


def test_a_batch_keeps_the_last_status_of_an_enrollment_and_the_newest_time() -> None:
    enrollment = example(en.EnrollmentSubmittedV1)
    batch = Batch()
    t1, t2 = datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 5, 2, tzinfo=UTC)
    batch.add(decoded(enrollment, time=t1))
    batch.add(decoded(example(en.EnrollmentAcceptedV1), time=t2))
    assert batch.count == 2
    assert batch.last_event_at == t2
    (row,) = batch.enrollments.values()
    assert row[5] == "accepted"


def test_session_changes_fold_into_details_and_stale_versions_are_dropped() -> None:
    session_id = uuid.uuid4()
    created = example(rg.SessionCreatedV1, session_id=session_id, version=1, capacity=20)
    batch = Batch()
    batch.add(decoded(created))
    batch.add(decoded(example(rg.SessionPublishedV1, session_id=session_id, version=2)))
    batch.add(
        decoded(
            example(
                rg.SessionCapacityChangedV1,
                session_id=session_id,
                version=3,
                capacity=40,
                status="published",
            )
        )
    )
    batch.add(decoded(example(rg.SessionStartedV1, session_id=session_id, version=2)))  # stale
    row = batch.sessions[session_id]
    assert (row[5], row[6], row[7]) == (40, "published", 3)
    assert not batch.session_changes


def test_changes_to_a_session_seen_in_an_earlier_batch_are_kept_as_a_partial_update() -> None:
    session_id = uuid.uuid4()
    batch = Batch()
    batch.add(decoded(example(rg.SessionRescheduledV1, session_id=session_id, version=4)))
    batch.add(decoded(example(rg.SessionCompletedV1, session_id=session_id, version=5)))
    status, version, year, capacity, _, _ = batch.session_changes[session_id]
    assert (status, version, capacity) == ("completed", 5, None)
    assert year == example(rg.SessionRescheduledV1).year


def test_a_plan_keeps_its_latest_revision() -> None:
    batch = Batch()
    batch.add(decoded(example(rg.AnnualPlanSetV1, year=2027, revision=2, planned_sessions=55)))
    batch.add(decoded(example(rg.AnnualPlanSetV1, year=2027, revision=1, planned_sessions=50)))
    assert batch.plans[2027][0] == 55
