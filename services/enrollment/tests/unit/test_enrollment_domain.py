"""The enrollment state machine and place rules, property-based: no sequence breaks them."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tpp_contracts.vocab import EnrollmentStatus, SessionStatus
from tpp_enrollment.domain import (
    OCCUPYING,
    TRANSITIONS,
    Action,
    EnrollmentRefusedError,
    NoPlaceError,
    Places,
    SessionNotStartedError,
    TransitionNotAllowedError,
    accept,
    add_months,
    certificate_number,
    check_started,
    decide,
    follow_up_due,
    follow_up_milestones,
    promotions,
    transition,
)

S = EnrollmentStatus
COUNTRIES = ("KE", "GH", "VN", "PE")


def places(**overrides: object) -> Places:
    values: dict[str, object] = {
        "status": SessionStatus.PUBLISHED,
        "capacity": 2,
        "accepted": 0,
        "review_required": False,
        "country_limit": None,
    }
    return Places(**(values | overrides))  # type: ignore[arg-type]


def test_a_free_place_accepts_and_a_full_session_waitlists() -> None:
    assert decide(places()) is S.ACCEPTED
    assert decide(places(accepted=2)) is S.WAITLISTED


def test_the_country_limit_waitlists_even_with_free_places() -> None:
    assert decide(places(country_limit=1), accepted_in_country=1) is S.WAITLISTED


def test_a_review_session_takes_applications_for_review() -> None:
    assert decide(places(review_required=True)) is S.SUBMITTED


@pytest.mark.parametrize("status", [s for s in SessionStatus if s is not SessionStatus.PUBLISHED])
def test_only_a_published_session_takes_enrollments(status: SessionStatus) -> None:
    with pytest.raises(EnrollmentRefusedError):
        decide(places(status=status))


def test_an_operator_cannot_accept_into_a_full_session() -> None:
    with pytest.raises(NoPlaceError):
        accept(places(accepted=2), 0)


def test_a_refused_transition_names_the_status_and_what_is_allowed() -> None:
    with pytest.raises(TransitionNotAllowedError) as refused:
        transition(S.WAITLISTED, Action.CHECK_IN)
    assert refused.value.status is S.WAITLISTED
    assert refused.value.allowed == ["accept", "cancel", "withdraw"]
    assert "waitlisted" in str(refused.value)


def test_promotion_is_fifo_and_skips_a_full_country() -> None:
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    chosen = promotions(
        places(capacity=3, accepted=1, country_limit=1),
        {"KE": 1},
        [(first, "KE"), (second, "GH"), (third, "VN")],
    )
    assert chosen == [second, third]


def test_a_lowered_capacity_promotes_nobody() -> None:
    assert promotions(places(capacity=2, accepted=3), {}, [(uuid.uuid4(), "KE")]) == []


def test_certificate_numbers_and_follow_up_milestones() -> None:
    assert certificate_number(2026, 42) == "TPP-2026-000042"
    assert add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)
    assert add_months(date(2026, 1, 31), -3) == date(2025, 10, 31)
    assert [(m.months, m.due_on) for m in follow_up_milestones(date(2026, 1, 15))] == [
        (3, date(2026, 4, 15)),
        (6, date(2026, 7, 15)),
        (12, date(2027, 1, 15)),
    ]
    with pytest.raises(ValueError, match="outside the calendar"):
        add_months(date(1, 1, 5), -3)


def test_follow_up_windows_meet_halfway_between_milestones() -> None:
    completed = date(2026, 1, 15)
    windows = [(m.opens_on, m.closes_on) for m in follow_up_milestones(completed)]
    assert windows == [
        (date(2026, 1, 15), date(2026, 5, 30)),
        (date(2026, 5, 30), date(2026, 10, 15)),
        (date(2026, 10, 15), date(2027, 4, 17)),
    ]


@pytest.mark.parametrize(
    ("recorded", "as_of", "due"),
    [
        ([], date(2026, 4, 14), None),  # not yet
        ([], date(2026, 4, 15), 3),
        ([date(2026, 4, 20)], date(2026, 4, 21), None),
        ([], date(2026, 5, 30), None),  # the 3-month one was missed; the 6-month not due yet
        # Two calls in the same week meet the 3-month milestone only.
        ([date(2026, 4, 20), date(2026, 4, 22)], date(2026, 7, 15), 6),
        # An early call (5 months) meets the 6-month milestone; the 3-month one stays due.
        ([date(2026, 6, 10)], date(2026, 5, 1), 3),
        ([date(2026, 6, 10)], date(2026, 7, 20), None),
        ([], date(2027, 1, 15), 12),
        ([], date(2027, 4, 17), None),  # missed: nothing left
    ],
)
def test_which_follow_up_is_due(recorded: list[date], as_of: date, due: int | None) -> None:
    milestone = follow_up_due(date(2026, 1, 15), recorded, as_of)
    assert (milestone.months if milestone else None) == due


def test_a_follow_up_due_on_a_shortened_month_end_is_due_that_day() -> None:
    # Completed November 30: the 3-month milestone falls on February 28, 90 days later.
    milestone = follow_up_due(date(2026, 11, 30), [], date(2027, 2, 28))
    assert milestone is not None
    assert (milestone.months, milestone.due_on) == (3, date(2027, 2, 28))
    # January 31 to April 30 is the shortest wait (89 days): the query's bound.
    assert follow_up_milestones(date(2027, 1, 31))[0].due_on - date(2027, 1, 31) == timedelta(89)


# --- property: a whole session driven by random commands ------------------------------------


@dataclass
class Entry:
    status: EnrollmentStatus
    country: str
    history: list[EnrollmentStatus] = field(default_factory=list)


@dataclass
class SessionModel:
    """A session driven the way the service drives it, with the domain's functions."""

    capacity: int
    country_limit: int | None
    review: bool
    entries: list[Entry] = field(default_factory=list)

    def places(self) -> Places:
        return Places(
            status=SessionStatus.PUBLISHED,
            capacity=self.capacity,
            accepted=self.occupied(),
            review_required=self.review,
            country_limit=self.country_limit,
        )

    def occupied(self, country: str | None = None) -> int:
        return sum(
            1
            for e in self.entries
            if e.status in OCCUPYING and (country is None or e.country == country)
        )

    def move(self, entry: Entry, action: Action) -> None:
        before = entry.status
        entry.status = transition(before, action)
        assert entry.status is TRANSITIONS[before][action]
        entry.history.append(entry.status)
        if action is Action.ACCEPT:
            self.check_admission(entry)

    def check_admission(self, entry: Entry) -> None:
        assert self.occupied() <= self.capacity
        if self.country_limit is not None:
            assert self.occupied(entry.country) <= self.country_limit

    def enroll(self, country: str) -> None:
        entry = Entry(decide(self.places(), self.occupied(country)), country)
        entry.history.append(entry.status)
        self.entries.append(entry)
        if entry.status is S.ACCEPTED:
            self.check_admission(entry)

    def promote(self) -> None:
        waiting = [(i, e) for i, e in enumerate(self.entries) if e.status is S.WAITLISTED]
        by_country = Counter(e.country for e in self.entries if e.status in OCCUPYING)
        ids = {uuid.UUID(int=i): e for i, e in waiting}
        chosen = promotions(
            self.places(), by_country, [(uuid.UUID(int=i), e.country) for i, e in waiting]
        )
        for key in chosen:
            self.move(ids[key], Action.ACCEPT)

    def act(self, index: int, action: Action) -> None:
        if not self.entries:
            return
        entry = self.entries[index % len(self.entries)]
        if action not in TRANSITIONS[entry.status]:
            with pytest.raises(TransitionNotAllowedError):
                transition(entry.status, action)
            return
        if action is Action.ACCEPT:
            try:
                accept(self.places(), self.occupied(entry.country))
            except NoPlaceError:
                return
        freed = entry.status in OCCUPYING and action is Action.WITHDRAW
        self.move(entry, action)
        if freed:
            self.promote()

    def set_capacity(self, capacity: int) -> None:
        raised = capacity > self.capacity
        self.capacity = capacity
        if raised:
            self.promote()


commands = st.lists(
    st.one_of(
        st.tuples(st.just("enroll"), st.sampled_from(COUNTRIES)),
        st.tuples(st.just("act"), st.integers(0, 50), st.sampled_from(list(Action))),
        st.tuples(st.just("capacity"), st.integers(1, 8)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    capacity=st.integers(1, 6),
    country_limit=st.one_of(st.none(), st.integers(1, 3)),
    review=st.booleans(),
    script=commands,
)
def test_no_command_sequence_exceeds_capacity_or_skips_a_state(
    capacity: int, country_limit: int | None, review: bool, script: list[tuple[object, ...]]
) -> None:
    model = SessionModel(capacity, country_limit, review)
    for command in script:
        if command[0] == "enroll":
            model.enroll(str(command[1]))
        elif command[0] == "act":
            model.act(int(command[1]), Action(str(command[2])))  # type: ignore[call-overload]
        else:
            model.set_capacity(int(command[1]))  # type: ignore[call-overload]
    for entry in model.entries:
        path = entry.history
        # Every step is an edge of the state machine, from a status a new enrollment starts in.
        assert path[0] in {S.SUBMITTED, S.ACCEPTED, S.WAITLISTED}
        for before, after in itertools.pairwise(path):
            assert after in TRANSITIONS[before].values()
        if S.COMPLETED in path:
            assert path.index(S.ATTENDED) < path.index(S.COMPLETED)
        if S.ATTENDED in path:
            assert path.index(S.ACCEPTED) < path.index(S.ATTENDED)
    # Places were only ever given within capacity and the country limit: checked at each
    # admission (check_admission), as a lowered capacity may leave more taken than it allows.
    # And nobody lost a place but by their own step: every change of status is in a history.
    assert all(entry.status is entry.history[-1] for entry in model.entries)


def test_attendance_follows_the_session_status_and_dates() -> None:
    start = date(2031, 5, 1)
    published, cancelled = SessionStatus.PUBLISHED, SessionStatus.CANCELLED
    # Months before the start, published: neither check-in nor no-show.
    for action in (Action.CHECK_IN, Action.NO_SHOW):
        with pytest.raises(SessionNotStartedError, match="starts on 2031-05-01"):
            check_started(action, published, start, date(2031, 1, 15))
    # The start date has come (the organizer has not pressed "start"): attendance is open.
    check_started(Action.CHECK_IN, published, start, start)
    check_started(Action.CHECK_IN, SessionStatus.ENROLLMENT_CLOSED, start, date(2031, 5, 3))
    # Started (or over) by its status, even before its planned date.
    check_started(Action.CHECK_IN, SessionStatus.IN_PROGRESS, start, date(2031, 4, 28))
    check_started(Action.NO_SHOW, SessionStatus.COMPLETED, start, date(2031, 4, 28))
    with pytest.raises(SessionNotStartedError, match="cancelled"):
        check_started(Action.CHECK_IN, cancelled, start, date(2031, 5, 2))
