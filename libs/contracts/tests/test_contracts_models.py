"""The event models: topics, keys, naming, vocabularies and the absence of personal data."""

from __future__ import annotations

import re
import typing
from datetime import date
from decimal import Decimal
from enum import StrEnum

import pytest
import tpp_contracts
from pydantic import BaseModel, ValidationError
from tpp_contracts import (
    ENROLLMENTS,
    EVENT_TYPES,
    TOPIC_EVENTS,
    TRAINEES,
    AnnualPlanSetV1,
    EnrollmentAcceptedV1,
    EnrollmentEvent,
    EnrollmentStatus,
    EvaluationSubmittedV1,
    Event,
    OrganizerCreatedV1,
    OrganizerEvent,
    PlanEvent,
    SessionCreatedV1,
    SessionEvent,
    SessionRescheduledV1,
    SessionStatus,
    TraineeEvent,
    TraineeRegisteredV1,
    topics,
    vocab,
)
from tpp_contracts.examples import example

MODELS = sorted(EVENT_TYPES.values(), key=lambda model: model.type)
ENROLLMENT_MODELS = TOPIC_EVENTS[ENROLLMENTS.name]
SESSION_MODELS = TOPIC_EVENTS[topics.SESSIONS.name]

# Fragments of field names that suggest personal data, which stays in the enrollment service.
PERSONAL = (
    "name", "mail", "passport", "birth", "dob", "comment", "phone", "address", "organization",
    "organisation", "employer", "note", "photo", "religion", "ethnic",
)  # fmt: skip
# Reviewed exceptions, with the reason each is not personal data.
NOT_PERSONAL = {
    ("OrganizerCreatedV1", "name"): "an institution's name",
    ("OrganizerUpdatedV1", "name"): "an institution's name",
    ("AnnualPlanSetV1", "note"): "an operator's note on a yearly plan, about no person",
    ("EvaluationSubmittedV1", "has_comment"): "a flag; the comment itself is not carried",
}
# Free-text fields of the events about people: each can hold anything a person types, so each
# is reviewed here (the producer fills it from a fixed list or an operator's words).
PEOPLE_FREE_TEXT = {
    ("EnrollmentRejectedV1", "reason"),
    ("EnrollmentWithdrawnV1", "reason"),
    ("EnrollmentCancelledV1", "reason"),
    ("EnrollmentCompletedV1", "certificate_number"),
}


def _fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, object]]:
    """Every field of a model, nested models included, as (dotted name, annotation)."""
    found: list[tuple[str, object]] = []
    for name, info in model.model_fields.items():
        found.append((prefix + name, info.annotation))
        for inner in _types_in(info.annotation):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                found.extend(_fields(inner, f"{prefix}{name}."))
    return found


def _types_in(annotation: object) -> list[object]:
    args = typing.get_args(annotation)
    if not args:
        return [annotation]
    return [t for arg in args for t in _types_in(arg)]


def test_every_model_travels_on_a_known_topic() -> None:
    for model in MODELS:
        assert model.topic in topics.ALL, model


def test_topic_events_lists_every_model_once_under_its_topic() -> None:
    assert set(TOPIC_EVENTS) == {topic.name for topic in topics.ALL}
    listed = [model for models in TOPIC_EVENTS.values() for model in models]
    assert sorted(listed, key=lambda model: model.type) == MODELS
    for name, models in TOPIC_EVENTS.items():
        assert all(model.topic.name == name for model in models)


@pytest.mark.parametrize(
    ("union", "topic"),
    [
        (OrganizerEvent, topics.ORGANIZERS),
        (PlanEvent, topics.PLANS),
        (SessionEvent, topics.SESSIONS),
        (TraineeEvent, topics.TRAINEES),
        (EnrollmentEvent, topics.ENROLLMENTS),
    ],
)
def test_each_topic_union_names_exactly_its_models(union: object, topic: topics.Topic) -> None:
    members = set(typing.get_args(union)) or {union}
    assert members == set(TOPIC_EVENTS[topic.name])


def test_event_types_follow_the_naming_convention() -> None:
    for model in MODELS:
        context = model.topic.name.split(".")[0]
        assert re.fullmatch(rf"tpp\.{context}\.[a-z_]+\.[a-z_]+\.v\d+", model.type), model.type
        version = model.type.rsplit(".v", 1)[1]
        assert model.__name__.endswith(f"V{version}"), model
        assert model.schema_version == int(version)


def test_public_names_resolve() -> None:
    for name in tpp_contracts.__all__:
        assert hasattr(tpp_contracts, name), name


def test_every_model_and_vocabulary_is_documented() -> None:
    classes = [*MODELS, *(v for v in vars(vocab).values() if _is_vocabulary(v))]
    for cls in classes:
        assert (cls.__dict__.get("__doc__") or "").strip(), cls


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_key_is_the_topic_key_field(model: type[Event]) -> None:
    event = example(model)
    assert event.key() == str(getattr(event, model.topic.key))


@pytest.mark.parametrize("model", ENROLLMENT_MODELS, ids=lambda model: model.__name__)
def test_enrollment_events_are_keyed_by_session_and_about_the_enrollment(
    model: type[Event],
) -> None:
    event = example(model)
    assert ENROLLMENTS.key == "session_id"
    assert event.key() == str(event.session_id)  # type: ignore[attr-defined]
    assert event.subject() == str(event.enrollment_id)  # type: ignore[attr-defined]
    for field in ("trainee_id", "country", "gender", "profession"):
        assert field in model.model_fields, (model, field)


def test_other_events_are_about_their_key() -> None:
    for model in MODELS:
        if model.topic != ENROLLMENTS:
            event = example(model)
            assert event.subject() == event.key()


@pytest.mark.parametrize("model", SESSION_MODELS, ids=lambda model: model.__name__)
def test_session_events_carry_version_and_status(model: type[Event]) -> None:
    assert {"session_id", "version", "status"} <= model.model_fields.keys()


def test_session_lifecycle_events_state_their_status() -> None:
    expected = {
        "SessionCreatedV1": SessionStatus.DRAFT,
        "SessionDraftUpdatedV1": SessionStatus.DRAFT,
        "SessionPublishedV1": SessionStatus.PUBLISHED,
        "SessionEnrollmentClosedV1": SessionStatus.ENROLLMENT_CLOSED,
        "SessionStartedV1": SessionStatus.IN_PROGRESS,
        "SessionCompletedV1": SessionStatus.COMPLETED,
        "SessionCancelledV1": SessionStatus.CANCELLED,
    }
    for model in SESSION_MODELS:
        if model.__name__ in expected:
            assert example(model).status == expected[model.__name__]  # type: ignore[attr-defined]


def test_enrollment_transitions_say_where_they_came_from() -> None:
    not_transitions = {"EnrollmentSubmittedV1", "EvaluationSubmittedV1", "FollowUpRecordedV1"}
    for model in ENROLLMENT_MODELS:
        has_previous = "previous_status" in model.model_fields
        assert has_previous != (model.__name__ in not_transitions), model


def test_no_event_field_suggests_personal_data() -> None:
    offending = [
        (model.__name__, field)
        for model in MODELS
        for field, _ in _fields(model)
        if any(fragment in field.lower() for fragment in PERSONAL)
        and (model.__name__, field) not in NOT_PERSONAL
    ]
    assert offending == []


def test_free_text_about_people_is_reviewed() -> None:
    free_text = {
        (model.__name__, field)
        for model in MODELS
        if model.topic in (TRAINEES, ENROLLMENTS)
        for field, schema in model.model_json_schema()["properties"].items()
        if any(_is_free_text(variant) for variant in schema.get("anyOf", [schema]))
    }
    assert free_text == PEOPLE_FREE_TEXT


def test_events_are_frozen() -> None:
    event = example(TraineeRegisteredV1)
    with pytest.raises(ValidationError):
        event.country = "FR"  # type: ignore[misc]


def test_unknown_fields_are_ignored_so_producers_can_add_optional_ones() -> None:
    data = example(EnrollmentAcceptedV1).model_dump(mode="json")
    event = EnrollmentAcceptedV1.model_validate({**data, "added_in_a_later_release": 1})
    assert event == example(EnrollmentAcceptedV1)


def test_accepted_is_not_a_promotion_unless_said() -> None:
    assert example(EnrollmentAcceptedV1).promoted_from_waitlist is False


@pytest.mark.parametrize(
    ("model", "overrides"),
    [
        (SessionCreatedV1, {"end_date": date(2026, 5, 10)}),
        (SessionRescheduledV1, {"end_date": date(2026, 5, 10)}),
        (SessionCreatedV1, {"capacity": 0}),
        (SessionCreatedV1, {"languages": []}),
        (SessionCreatedV1, {"languages": ["English"]}),
        (SessionCreatedV1, {"venue_country": "China"}),
        (SessionCreatedV1, {"status": SessionStatus.PUBLISHED}),
        (TraineeRegisteredV1, {"country": "ke"}),
        (TraineeRegisteredV1, {"gender": "unknown"}),
        (OrganizerCreatedV1, {"name": ""}),
        (AnnualPlanSetV1, {"currency": None}),
        (AnnualPlanSetV1, {"budget": None}),
        (AnnualPlanSetV1, {"budget": Decimal(-1)}),
        (EvaluationSubmittedV1, {"score": 0}),
        (EvaluationSubmittedV1, {"score": 6}),
        (EnrollmentAcceptedV1, {"previous_status": "published"}),
    ],
)
def test_invalid_events_are_rejected(model: type[Event], overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        example(model, **overrides)


def test_a_plan_without_budget_needs_no_currency() -> None:
    plan = example(AnnualPlanSetV1, budget=None, currency=None)
    assert plan.key() == "2026"


def test_previous_status_is_none_when_created_in_that_status() -> None:
    event = example(EnrollmentAcceptedV1, previous_status=None)
    assert event.previous_status is None
    assert example(EnrollmentAcceptedV1).previous_status == EnrollmentStatus.ACCEPTED


def test_vocabulary_values_are_lower_snake_case() -> None:
    vocabularies = [v for v in vars(vocab).values() if _is_vocabulary(v)]
    assert len(vocabularies) == 10
    for enum in vocabularies:
        for member in enum:
            assert re.fullmatch(r"[a-z]+(_[a-z]+)*", member.value), member
            assert member.name == member.value.upper(), member


def test_example_rejects_unknown_overrides() -> None:
    with pytest.raises(TypeError, match="no field"):
        example(TraineeRegisteredV1, full_name="x")


def _is_vocabulary(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, StrEnum) and value is not StrEnum


def _is_free_text(schema: dict[str, object]) -> bool:
    # A string that no pattern, format or list of values holds to a shape.
    shaped = {"pattern", "format", "enum", "const"}
    return schema.get("type") == "string" and not shaped & schema.keys()
