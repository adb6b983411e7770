"""The session lifecycle as a pure state machine: rules, events, and every reachable state."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tpp_contracts.registry import (
    SessionCancelledV1,
    SessionCapacityChangedV1,
    SessionCreatedV1,
    SessionDraftUpdatedV1,
    SessionPublishedV1,
    SessionRescheduledV1,
)
from tpp_contracts.vocab import SessionStatus, TechnicalField
from tpp_registry.domain import (
    TERMINAL,
    TRANSITIONS,
    Cancel,
    Command,
    DetailNotRevisableError,
    InvalidSessionError,
    InvalidTransitionError,
    Revise,
    SessionDetails,
    SessionState,
    Transition,
    create,
    decide,
    validate,
)

HOME = "CN"
S = SessionStatus


def details(**overrides: Any) -> SessionDetails:
    """Valid details of a session in 2027; override any."""
    values: dict[str, Any] = {
        "organizer_id": uuid.uuid4(),
        "title": "Water-saving irrigation",
        "field": TechnicalField.AGRICULTURE_FORESTRY,
        "year": 2027,
        "start_date": date(2027, 9, 1),
        "end_date": date(2027, 9, 21),
        "venue_city": "Yangling",
        "venue_country": "CN",
        "capacity": 25,
        "languages": ("en", "fr"),
    }
    return SessionDetails(**values | overrides)


def draft(**overrides: Any) -> SessionState:
    """A new draft session."""
    return create(details(**overrides), home_country=HOME).state


def run(state: SessionState, *commands: Command) -> SessionState:
    """Apply commands in order; each must be accepted."""
    for command in commands:
        state = decide(state, command, home_country=HOME).state
    return state


def test_a_new_session_is_a_draft_at_version_1_and_says_so() -> None:
    decision = create(details(venue_country="KE"), home_country=HOME)
    assert decision.state.status is S.DRAFT
    assert decision.state.version == 1
    assert decision.state.overseas is True
    [event] = decision.events
    assert isinstance(event, SessionCreatedV1)
    assert event.overseas is True
    assert event.languages == ["en", "fr"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"end_date": date(2027, 8, 31)}, "end_date"),
        ({"year": 2028}, "year"),
        ({"capacity": 0}, "capacity"),
        ({"country_limit": 0}, "country_limit"),
        ({"languages": ()}, "languages"),
    ],
)
def test_inconsistent_details_are_refused_naming_the_field(
    overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidSessionError) as refused:
        create(details(**overrides), home_country=HOME)
    assert refused.value.field == field


def test_the_whole_lifecycle_ends_completed_with_one_event_per_step() -> None:
    state = draft()
    steps = ["publish", "close_enrollment", "start", "complete"]
    statuses = [S.PUBLISHED, S.ENROLLMENT_CLOSED, S.IN_PROGRESS, S.COMPLETED]
    for step, status in zip(steps, statuses, strict=True):
        decision = decide(state, Transition(step), home_country=HOME)
        assert decision.state.status is status
        assert [e.version for e in decision.events] == [state.version + 1]  # type: ignore[attr-defined]
        state = decision.state


def test_publishing_carries_the_full_details() -> None:
    [event] = decide(draft(), Transition("publish"), home_country=HOME).events
    assert isinstance(event, SessionPublishedV1)
    assert event.title == "Water-saving irrigation"
    assert event.capacity == 25
    assert event.version == 2


def test_an_invalid_transition_names_the_current_state_and_what_is_allowed() -> None:
    with pytest.raises(InvalidTransitionError) as refused:
        decide(draft(), Transition("start"), home_country=HOME)
    assert refused.value.current is S.DRAFT
    assert refused.value.allowed == ["publish", "cancel"]


def test_cancelling_records_the_reason_and_the_state_it_left() -> None:
    published = run(draft(), Transition("publish"))
    [event] = decide(published, Cancel("venue flooded"), home_country=HOME).events
    assert isinstance(event, SessionCancelledV1)
    assert event.reason == "venue flooded"
    assert event.previous_status is S.PUBLISHED


def test_a_draft_changes_freely_with_one_event_carrying_everything() -> None:
    decision = decide(
        draft(),
        Revise({"title": "Drip irrigation", "venue_country": "ET"}),
        home_country=HOME,
    )
    [event] = decision.events
    assert isinstance(event, SessionDraftUpdatedV1)
    assert event.title == "Drip irrigation"
    assert event.overseas is True
    assert decision.state.version == 2


def test_an_unchanged_revision_is_no_change() -> None:
    state = draft()
    decision = decide(state, Revise({"title": state.title}), home_country=HOME)
    assert decision.events == []
    assert decision.state == state


def test_after_publication_dates_and_capacity_change_with_an_event_each() -> None:
    published = run(draft(), Transition("publish"))
    decision = decide(
        published,
        Revise(
            {
                "start_date": date(2027, 10, 1),
                "end_date": date(2027, 10, 20),
                "capacity": 40,
            }
        ),
        home_country=HOME,
    )
    rescheduled, resized = decision.events
    assert isinstance(rescheduled, SessionRescheduledV1)
    assert isinstance(resized, SessionCapacityChangedV1)
    assert (resized.previous_capacity, resized.capacity) == (25, 40)
    assert [rescheduled.version, resized.version] == [3, 4]
    assert decision.state.version == 4


def test_after_publication_the_title_is_fixed() -> None:
    published = run(draft(), Transition("publish"))
    with pytest.raises(DetailNotRevisableError) as refused:
        decide(published, Revise({"title": "Other"}), home_country=HOME)
    assert refused.value.fields == ["title"]


# --- every sequence of commands --------------------------------------------------------------

_start = st.dates(min_value=date(2026, 1, 1), max_value=date(2028, 12, 1))
revisions = st.builds(
    lambda start, days, capacity, country, title: Revise(
        {
            k: v
            for k, v in {
                "start_date": start,
                "end_date": start + timedelta(days=days),
                "year": start.year,
                "capacity": capacity,
                "venue_country": country,
                "title": title,
            }.items()
            if v is not None
        }
    ),
    _start,
    st.integers(-3, 30),
    st.one_of(st.none(), st.integers(-1, 100)),
    st.one_of(st.none(), st.sampled_from(["CN", "KE", "BR"])),
    st.one_of(st.none(), st.text(min_size=1, max_size=20)),
)
commands = st.one_of(
    st.sampled_from([Transition(c) for c in TRANSITIONS if c != "cancel"]),
    st.builds(Cancel, st.text(min_size=1, max_size=30)),
    revisions,
)


# It checks the domain's rules, not their speed: a loaded machine must not fail it.
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(commands, max_size=25))
def test_no_sequence_of_commands_reaches_an_invalid_state(sequence: list[Command]) -> None:
    state = draft()
    for command in sequence:
        before = state
        try:
            decision = decide(state, command, home_country=HOME)
        except (InvalidTransitionError, InvalidSessionError, DetailNotRevisableError):
            assert state == before  # a refused command changes nothing
            continue
        assert before.status not in TERMINAL, "completed and cancelled are terminal"
        state = decision.state
        validate(state)
        assert state.status in set(SessionStatus)
        assert state.overseas == (state.venue_country != HOME)
        assert state.version == before.version + len(decision.events)
        versions = [e.version for e in decision.events]  # type: ignore[attr-defined]
        assert versions == list(range(before.version + 1, state.version + 1))
        assert all(e.session_id == state.id for e in decision.events)  # type: ignore[attr-defined]
        if state.status is not before.status:
            assert TRANSITIONS[_name(command)][before.status] is state.status


def _name(command: Command) -> str:
    return "cancel" if isinstance(command, Cancel) else getattr(command, "command", "revise")


@given(st.sampled_from(sorted(TERMINAL)), commands)
def test_completed_and_cancelled_sessions_accept_nothing(
    status: SessionStatus, command: Command
) -> None:
    state = replace(draft(), status=status)
    with pytest.raises(InvalidTransitionError):
        decide(state, command, home_country=HOME)
