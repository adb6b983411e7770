"""Enrollment domain: the enrollment state machine and how a session's places are given."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from tpp_contracts.vocab import EnrollmentStatus, SessionStatus

S = EnrollmentStatus

#: Statuses that hold one of the session's places.
OCCUPYING = frozenset({S.ACCEPTED, S.ATTENDED, S.COMPLETED, S.NO_SHOW})
#: Statuses a cancelled session cancels (the others are final already).
CANCELLABLE = frozenset({S.SUBMITTED, S.ACCEPTED, S.WAITLISTED, S.ATTENDED})
#: Months after completion at which a follow-up is due, in order.
FOLLOW_UP_MONTHS = (3, 6, 12)


class Action(StrEnum):
    """What can happen to an enrollment."""

    ACCEPT = "accept"
    WAITLIST = "waitlist"
    REJECT = "reject"
    WITHDRAW = "withdraw"
    CANCEL = "cancel"
    CHECK_IN = "check_in"
    NO_SHOW = "no_show"
    COMPLETE = "complete"


#: The state machine: from a status, each allowed action and the status it leads to.
TRANSITIONS: Mapping[EnrollmentStatus, Mapping[Action, EnrollmentStatus]] = {
    S.SUBMITTED: {
        Action.ACCEPT: S.ACCEPTED,
        Action.WAITLIST: S.WAITLISTED,
        Action.REJECT: S.REJECTED,
        Action.WITHDRAW: S.WITHDRAWN,
        Action.CANCEL: S.CANCELLED,
    },
    S.WAITLISTED: {
        Action.ACCEPT: S.ACCEPTED,
        Action.WITHDRAW: S.WITHDRAWN,
        Action.CANCEL: S.CANCELLED,
    },
    S.ACCEPTED: {
        Action.WITHDRAW: S.WITHDRAWN,
        Action.CHECK_IN: S.ATTENDED,
        Action.NO_SHOW: S.NO_SHOW,
        Action.CANCEL: S.CANCELLED,
    },
    S.ATTENDED: {Action.COMPLETE: S.COMPLETED, Action.CANCEL: S.CANCELLED},
    S.REJECTED: {},
    S.WITHDRAWN: {},
    S.CANCELLED: {},
    S.COMPLETED: {},
    S.NO_SHOW: {},
}


class TransitionNotAllowedError(Exception):
    """The action is not allowed from the enrollment's current status."""

    def __init__(self, status: EnrollmentStatus, action: Action) -> None:
        self.status = status
        self.action = action
        self.allowed = sorted(a.value for a in TRANSITIONS[status])
        allowed = ", ".join(self.allowed) or "none"
        super().__init__(
            f"cannot {action.value} an enrollment that is {status.value} (allowed: {allowed})"
        )


class EnrollmentRefusedError(Exception):
    """The session takes no enrollment now."""


class NoPlaceError(Exception):
    """No place is free for this trainee (session full, or the country's limit reached)."""


#: Session statuses that say the session has started, whatever its dates say.
STARTED = frozenset({SessionStatus.IN_PROGRESS, SessionStatus.COMPLETED})


class SessionNotStartedError(Exception):
    """Attendance (check-in, no-show) is recorded only once the session has started."""

    def __init__(self, action: Action, status: SessionStatus, start_date: date | None) -> None:
        self.action = action
        self.status = status
        self.start_date = start_date
        when = f"starts on {start_date}" if start_date else "has no start date"
        super().__init__(
            f"cannot {action.value} before the session starts: it {when} and is"
            f" {status.value} (attendance is recorded once it is in progress or its start"
            " date has come)"
        )


def check_started(
    action: Action, status: SessionStatus, start_date: date | None, today: date
) -> None:
    """Raise SessionNotStartedError unless the session has started: its status says so, or
    its start date has come while it is still on (not cancelled)."""
    if status in STARTED:
        return
    if status is not SessionStatus.CANCELLED and start_date is not None and today >= start_date:
        return
    raise SessionNotStartedError(action, status, start_date)


def transition(status: EnrollmentStatus, action: Action) -> EnrollmentStatus:
    """The status after ``action``; raises TransitionNotAllowedError when not allowed."""
    target = TRANSITIONS[status].get(action)
    if target is None:
        raise TransitionNotAllowedError(status, action)
    return target


@dataclass(frozen=True, slots=True)
class Places:
    """What the session view says about a session's places."""

    status: SessionStatus
    capacity: int
    accepted: int
    review_required: bool
    country_limit: int | None = None


def has_room(places: Places, accepted_in_country: int) -> bool:
    """A place is free, and the trainee's country is under its limit."""
    if places.accepted >= places.capacity:
        return False
    return places.country_limit is None or accepted_in_country < places.country_limit


def decide(places: Places, accepted_in_country: int = 0) -> EnrollmentStatus:
    """The status of a new enrollment: submitted for review, accepted if room, else waitlisted."""
    if places.status is not SessionStatus.PUBLISHED:
        raise EnrollmentRefusedError(f"session is {places.status.value}, not open for enrollment")
    if places.review_required:
        return S.SUBMITTED
    return S.ACCEPTED if has_room(places, accepted_in_country) else S.WAITLISTED


def accept(places: Places, accepted_in_country: int) -> None:
    """Check that a place can be given; raises NoPlaceError otherwise."""
    if places.status in {SessionStatus.CANCELLED, SessionStatus.COMPLETED}:
        raise EnrollmentRefusedError(f"session is {places.status.value}")
    if places.accepted >= places.capacity:
        raise NoPlaceError(f"all {places.capacity} places are taken")
    if not has_room(places, accepted_in_country):
        raise NoPlaceError(f"the country's limit of {places.country_limit} places is reached")


def promotions(
    places: Places,
    accepted_by_country: Mapping[str, int],
    waitlist: Sequence[tuple[uuid.UUID, str]],
) -> list[uuid.UUID]:
    """Who comes off the waitlist (in FIFO order), skipping those whose country is full."""
    if places.status not in {SessionStatus.PUBLISHED, SessionStatus.ENROLLMENT_CLOSED}:
        return []
    accepted = places.accepted
    by_country = dict(accepted_by_country)
    promoted: list[uuid.UUID] = []
    for enrollment_id, country in waitlist:
        if accepted >= places.capacity:
            break
        if places.country_limit is not None and by_country.get(country, 0) >= places.country_limit:
            continue
        promoted.append(enrollment_id)
        accepted += 1
        by_country[country] = by_country.get(country, 0) + 1
    return promoted


def certificate_number(year: int, serial: int) -> str:
    """A certificate number, unique through the serial: ``TPP-2026-000042``."""
    return f"TPP-{year}-{serial:06d}"


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later (the month's last day when it is shorter)."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return day.replace(year=year, month=month, day=min(day.day, candidate))
        except ValueError:
            continue
    raise ValueError(f"{day} {months:+d} months is outside the calendar (years 1-9999)")


@dataclass(frozen=True)
class FollowUpMilestone:
    """A follow-up due ``months`` after completion. A follow-up dated from ``opens_on`` up to
    the day before ``closes_on`` counts for it; after that the milestone is missed."""

    months: int
    due_on: date
    opens_on: date
    closes_on: date


def follow_up_milestones(completed_on: date) -> list[FollowUpMilestone]:
    """The 3, 6 and 12 month milestones of a completion, each with its window.

    Windows meet halfway between two due dates, so each follow-up counts for exactly one
    milestone, the nearest: the first window opens at completion, the last closes as long
    after its due date as it opened before it (15 months after completion).
    """
    dues = [add_months(completed_on, months) for months in FOLLOW_UP_MONTHS]
    bounds = [completed_on] + [a + (b - a) / 2 for a, b in itertools.pairwise(dues)]
    bounds.append(dues[-1] + (dues[-1] - bounds[-1]))
    return [
        FollowUpMilestone(months, due, bounds[i], bounds[i + 1])
        for i, (months, due) in enumerate(zip(FOLLOW_UP_MONTHS, dues, strict=True))
    ]


def follow_up_due(
    completed_on: date, recorded_on: Sequence[date], as_of: date
) -> FollowUpMilestone | None:
    """The milestone due on ``as_of`` (from its due date until its window closes) that no
    follow-up in its window has met yet; None when there is none."""
    for milestone in follow_up_milestones(completed_on):
        if milestone.due_on <= as_of < milestone.closes_on and not any(
            milestone.opens_on <= day < milestone.closes_on for day in recorded_on
        ):
            return milestone
    return None
