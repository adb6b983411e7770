"""Steps shared by the use cases that move places: promotion, transitions, problems."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tpp_contracts.enrollment import EnrollmentAcceptedV1
from tpp_contracts.envelope import Envelope
from tpp_contracts.vocab import EnrollmentStatus, SessionStatus
from tpp_plumbing.db.uow import UnitOfWork
from tpp_plumbing.web.problems import ConflictError, NotFoundError, ProblemError

from tpp_enrollment.domain import (
    Action,
    EnrollmentRefusedError,
    NoPlaceError,
    SessionNotStartedError,
    TransitionNotAllowedError,
    check_started,
    promotions,
    transition,
)
from tpp_enrollment.events import enrollment_event
from tpp_enrollment.store import Db, Row
from tpp_enrollment.store import enrollments as store


def conflict(error: Exception, **extensions: Any) -> ConflictError:
    """The 409 problem for a refused domain decision."""
    if isinstance(error, TransitionNotAllowedError):
        extensions |= {
            "current_status": error.status.value,
            "action": error.action.value,
            "allowed_transitions": error.allowed,
        }
    return ConflictError(str(error), **extensions)


class AttendanceTooEarlyError(ConflictError):
    """Attendance recorded before the session started."""

    title = "Session not started"


class CompletionBeforeStartError(ProblemError):
    """A completion dated before the session's start."""

    status = 422
    title = "Completion before the session's start"


def started(view: Mapping[Any, Any], action: Action) -> None:
    """A 409 problem unless the session of ``view`` has started (for attendance)."""
    try:
        check_started(
            action, SessionStatus(view["status"]), view["start_date"], datetime.now(UTC).date()
        )
    except SessionNotStartedError as error:
        raise AttendanceTooEarlyError(
            str(error),
            session_id=str(view["session_id"]),
            session_status=error.status.value,
            session_start_date=error.start_date.isoformat() if error.start_date else None,
        ) from None


def checked(row: Mapping[Any, Any], action: Action) -> EnrollmentStatus:
    """The status ``action`` leads to from the row's; a 409 problem when not allowed."""
    try:
        return transition(EnrollmentStatus(row["status"]), action)
    except TransitionNotAllowedError as error:
        raise conflict(error, enrollment_id=str(row["id"])) from None


async def locked_enrollment(db: Db, enrollment_id: uuid.UUID) -> tuple[Row, Row]:
    """The enrollment and its session view, locked in that order: session first, then it."""
    found = await store.get_enrollment(db, enrollment_id)
    if found is None:
        raise NotFoundError(f"no enrollment {enrollment_id}")
    view = await store.lock_session(db, found["session_id"])
    row = await store.get_enrollment(db, enrollment_id, lock=True)
    if view is None or row is None:
        raise NotFoundError(f"no session view for enrollment {enrollment_id}")
    return row, view


async def promote(
    uow: UnitOfWork[Db], session_id: uuid.UUID, *, cause: Envelope | None = None
) -> int:
    """Admit from the waitlist (FIFO, within the country limit) while places are free.

    The caller holds the session view lock. Returns how many came off the waitlist.
    """
    view = await store.get_session(uow.db, session_id)
    if view is None:
        return 0
    waiting = await store.session_enrollments(
        uow.db, session_id, [EnrollmentStatus.WAITLISTED], lock=True
    )
    if not waiting:
        return 0
    chosen = promotions(
        store.places(view),
        await store.accepted_by_country(uow.db, session_id),
        [(row["id"], row["country"]) for row in waiting],
    )
    if not chosen:
        return 0
    await store.set_status(uow.db, chosen, EnrollmentStatus.ACCEPTED, waitlist_seq=None)
    await store.add_accepted(uow.db, session_id, len(chosen))
    by_id = {row["id"]: row for row in waiting}
    uow.emit(
        *(
            enrollment_event(
                EnrollmentAcceptedV1,
                by_id[enrollment_id],
                previous_status=EnrollmentStatus.WAITLISTED,
                promoted_from_waitlist=True,
            )
            for enrollment_id in chosen
        ),
        cause=cause,
    )
    return len(chosen)


__all__ = [
    "EnrollmentRefusedError",
    "NoPlaceError",
    "checked",
    "conflict",
    "locked_enrollment",
    "promote",
]
