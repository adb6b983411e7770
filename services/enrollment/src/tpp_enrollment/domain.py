"""Enrollment domain: how a request for a place is decided."""

from __future__ import annotations

from dataclasses import dataclass

from tpp_contracts.vocab import EnrollmentStatus, SessionStatus


@dataclass(frozen=True, slots=True)
class Places:
    """What the session view says about a session's places."""

    status: SessionStatus
    capacity: int
    accepted: int
    review_required: bool


class EnrollmentRefusedError(Exception):
    """The session takes no enrollment now."""


def decide(places: Places) -> EnrollmentStatus:
    """The status of a new enrollment: accepted while a place is free, else waitlisted."""
    if places.status is not SessionStatus.PUBLISHED:
        raise EnrollmentRefusedError(f"session is {places.status.value}, not open for enrollment")
    if places.review_required:
        return EnrollmentStatus.SUBMITTED
    if places.accepted < places.capacity:
        return EnrollmentStatus.ACCEPTED
    return EnrollmentStatus.WAITLISTED
