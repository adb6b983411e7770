"""Enrollment use cases: enroll, review, withdraw, attendance and completion."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from tpp_contracts.enrollment import (
    EnrollmentAcceptedV1,
    EnrollmentCompletedV1,
    EnrollmentRejectedV1,
    EnrollmentSubmittedV1,
    EnrollmentWaitlistedV1,
    EnrollmentWithdrawnV1,
    TraineeAttendedV1,
    TraineeNoShowV1,
)
from tpp_contracts.envelope import Event, new_id
from tpp_contracts.vocab import EnrollmentStatus, RejectionReason
from tpp_plumbing.db.uow import UnitsOfWork
from tpp_plumbing.db.writes import RawTransaction
from tpp_plumbing.web.problems import ConflictError, NotFoundError

from tpp_enrollment.api.models import Enrollment, EnrollmentIn, WithdrawIn
from tpp_enrollment.domain import (
    OCCUPYING,
    Action,
    EnrollmentRefusedError,
    NoPlaceError,
    accept,
    certificate_number,
    decide,
)
from tpp_enrollment.events import enrollment_event
from tpp_enrollment.service.places import (
    CompletionBeforeStartError,
    checked,
    conflict,
    locked_enrollment,
    promote,
    started,
)
from tpp_enrollment.store import RawRow
from tpp_enrollment.store import enrollments as store

S = EnrollmentStatus


class EnrollmentService:
    """Gives and takes a session's places; every decision holds the session's row lock."""

    def __init__(self, units: UnitsOfWork) -> None:
        self._uow = units

    async def enroll(self, session_id: uuid.UUID, data: EnrollmentIn) -> Enrollment:
        """Ask for a place: accepted while one is free, else waitlisted (or submitted)."""
        # Decided on an unlocked read and written only if the session's places did not move
        # meanwhile (two statements, no transaction held open across them); when they did,
        # decided again under the session's lock.
        try:
            return await self._enroll(session_id, data, locked=False)
        except store.PlacesMovedError:
            return await self._enroll(session_id, data, locked=True)

    async def _enroll(
        self, session_id: uuid.UUID, data: EnrollmentIn, *, locked: bool
    ) -> Enrollment:
        async with self._uow.fast(transaction=locked) as uow:
            if locked:
                await store.lock_for_enroll(uow.db, session_id)
            seen = await store.read_for_enroll(uow.db, session_id, data.trainee_id)
            status = _decided(seen, session_id, data)
            assert seen is not None  # _decided raised otherwise
            if seen["enrolled"]:  # refused after the decision, whatever the places say
                raise await _already_enrolled(uow.db, session_id, data.trainee_id)
            position = None
            if status is S.WAITLISTED:
                if seen["waitlisted"] is None:  # not counted: never when the waitlist may grow
                    raise store.PlacesMovedError
                position = seen["waitlisted"] + 1  # entries ahead: every one (nothing moved)
            row = _new_row(session_id, data, status, seen)
            uow.emit(created_event(status, row | _profile(seen), position))
            try:
                written = await uow.commit(store.new_enrollment(row, seen["places_version"]))
            except store.AlreadyEnrolledError:
                raise await _already_enrolled(uow.db, session_id, data.trainee_id) from None
            if written is None:
                raise store.PlacesMovedError
        row["waitlist_seq"] = written["waitlist_seq"]
        return Enrollment.model_validate(row | {"waitlist_position": position})

    async def accept(self, enrollment_id: uuid.UUID) -> Enrollment:
        """An operator gives a place to a submitted or waitlisted trainee, if one is free."""
        async with self._uow() as uow:
            row, view = await locked_enrollment(uow.db, enrollment_id)
            checked(row, Action.ACCEPT)
            in_country = await store.accepted_in_country(uow.db, row["session_id"], row["country"])
            try:
                accept(store.places(view), in_country)
            except (NoPlaceError, EnrollmentRefusedError) as error:
                raise conflict(error, enrollment_id=str(enrollment_id)) from None
            await store.set_status(uow.db, [enrollment_id], S.ACCEPTED, waitlist_seq=None)
            await store.add_accepted(uow.db, row["session_id"], 1)
            event = enrollment_event(
                EnrollmentAcceptedV1,
                row,
                previous_status=row["status"],
                promoted_from_waitlist=row["status"] == S.WAITLISTED,
            )
            uow.emit(event)
        return await self._read(enrollment_id)

    async def waitlist(self, enrollment_id: uuid.UUID) -> Enrollment:
        """An operator puts a submitted application on the waitlist (at its end)."""
        async with self._uow() as uow:
            row, _ = await locked_enrollment(uow.db, enrollment_id)
            checked(row, Action.WAITLIST)
            seq = await store.next_waitlist_seq(uow.db)
            await store.set_status(uow.db, [enrollment_id], S.WAITLISTED, waitlist_seq=seq)
            position = await store.waitlist_position(uow.db, row["session_id"], seq)
            event = enrollment_event(
                EnrollmentWaitlistedV1, row, previous_status=row["status"], position=position
            )
            uow.emit(event)
        return await self._read(enrollment_id)

    async def reject(
        self, enrollment_id: uuid.UUID, reason: RejectionReason, note: str | None = None
    ) -> Enrollment:
        """An operator turns a submitted application down, with a reason (its category goes
        in the event; the note stays here)."""
        async with self._uow() as uow:
            row, _ = await locked_enrollment(uow.db, enrollment_id)
            checked(row, Action.REJECT)
            await store.set_status(uow.db, [enrollment_id], S.REJECTED, reason=reason, note=note)
            event = enrollment_event(
                EnrollmentRejectedV1, row, previous_status=row["status"], reason=reason
            )
            uow.emit(event)
        return await self._read(enrollment_id)

    async def withdraw(self, enrollment_id: uuid.UUID, data: WithdrawIn) -> Enrollment:
        """The trainee gives up; a freed place goes to the first waitlisted trainee."""
        reason = data.reason
        async with self._uow() as uow:
            row, _ = await locked_enrollment(uow.db, enrollment_id)
            checked(row, Action.WITHDRAW)
            await store.set_status(
                uow.db,
                [enrollment_id],
                S.WITHDRAWN,
                reason=reason,
                note=data.note,
                waitlist_seq=None,
            )
            event = enrollment_event(
                EnrollmentWithdrawnV1, row, previous_status=row["status"], reason=reason
            )
            uow.emit(event)
            if S(row["status"]) in OCCUPYING:
                await store.add_accepted(uow.db, row["session_id"], -1)
                await promote(uow, row["session_id"])
        return await self._read(enrollment_id)

    async def check_in(self, enrollment_id: uuid.UUID) -> Enrollment:
        """An accepted trainee arrived at the session."""
        async with self._uow() as uow:
            row, view = await locked_enrollment(uow.db, enrollment_id)
            checked(row, Action.CHECK_IN)
            started(view, Action.CHECK_IN)
            now = datetime.now(UTC)
            await store.set_status(uow.db, [enrollment_id], S.ATTENDED, checked_in_at=now)
            event = enrollment_event(
                TraineeAttendedV1, row, previous_status=row["status"], checked_in_at=now
            )
            uow.emit(event)
        return await self._read(enrollment_id)

    async def mark_no_show(self, enrollment_id: uuid.UUID) -> Enrollment:
        """An accepted trainee did not come."""
        async with self._uow() as uow:
            row, view = await locked_enrollment(uow.db, enrollment_id)
            checked(row, Action.NO_SHOW)
            started(view, Action.NO_SHOW)
            await store.set_status(uow.db, [enrollment_id], S.NO_SHOW)
            event = enrollment_event(TraineeNoShowV1, row, previous_status=row["status"])
            uow.emit(event)
        return await self._read(enrollment_id)

    async def complete(self, enrollment_id: uuid.UUID, completed_on: date | None) -> Enrollment:
        """A trainee who attended completed the session: a unique certificate number."""
        async with self._uow() as uow:
            row, view = await locked_enrollment(uow.db, enrollment_id)
            checked(row, Action.COMPLETE)
            day = completed_on or date.today()
            if view["start_date"] is not None and day < view["start_date"]:
                raise CompletionBeforeStartError(
                    f"a completion comes after the session's start on {view['start_date']}"
                    f" ({day} given{'' if completed_on else ': today, by default'})",
                    field="completed_on",
                )
            number = certificate_number(view["year"], await store.next_certificate_serial(uow.db))
            await store.set_status(
                uow.db, [enrollment_id], S.COMPLETED, completed_on=day, certificate_number=number
            )
            event = enrollment_event(
                EnrollmentCompletedV1,
                row,
                previous_status=row["status"],
                certificate_number=number,
                completed_on=day,
            )
            uow.emit(event)
        return await self._read(enrollment_id)

    async def _read(self, enrollment_id: uuid.UUID) -> Enrollment:
        return await read_enrollment(self._uow, enrollment_id)


async def read_enrollment(units: UnitsOfWork, enrollment_id: uuid.UUID) -> Enrollment:
    """The API view of an enrollment (with its waitlist position), as committed."""
    async with units.read() as db:
        row = await store.get_enrollment(db, enrollment_id)
        if row is None:
            raise NotFoundError(f"no enrollment {enrollment_id}")
        position = None
        if row["status"] == S.WAITLISTED and row["waitlist_seq"] is not None:
            position = await store.waitlist_position(db, row["session_id"], row["waitlist_seq"])
    return Enrollment.model_validate(dict(row) | {"waitlist_position": position})


def created_event(status: EnrollmentStatus, row: Mapping[Any, Any], position: int | None) -> Event:
    """The event of a new enrollment in ``status``."""
    if status is S.ACCEPTED:
        return enrollment_event(EnrollmentAcceptedV1, row, previous_status=None)
    if status is S.WAITLISTED:
        return enrollment_event(
            EnrollmentWaitlistedV1, row, previous_status=None, position=position
        )
    return enrollment_event(EnrollmentSubmittedV1, row)


def _decided(view: RawRow | None, session_id: uuid.UUID, data: EnrollmentIn) -> EnrollmentStatus:
    """The new enrollment's status from the session view and trainee read together."""
    if view is None:
        raise NotFoundError(f"no open session {session_id}")
    if view["trainee_id"] is None:
        raise NotFoundError(f"no trainee {data.trainee_id}", field="trainee_id")
    if view["erased_at"] is not None:
        raise ConflictError(
            "the trainee was erased: register the person again to enroll them",
            field="trainee_id",
        )
    places = store.places(view)
    try:
        return decide(places, view["in_country"] or 0)
    except EnrollmentRefusedError as error:
        raise conflict(error, session_status=places.status.value) from None


def _profile(seen: RawRow) -> dict[str, Any]:
    """The trainee attributes the enrollment's events carry."""
    return {"gender": seen["gender"], "profession": seen["profession"]}


def _new_row(
    session_id: uuid.UUID, data: EnrollmentIn, status: EnrollmentStatus, view: RawRow
) -> dict[str, Any]:
    """A new enrollment's row (the trainee's country kept with it)."""
    return {
        "id": new_id(),
        "session_id": session_id,
        "trainee_id": data.trainee_id,
        "status": status.value,
        "country": view["country"],
    }


async def _already_enrolled(
    db: RawTransaction, session_id: uuid.UUID, trainee_id: uuid.UUID
) -> ConflictError:
    """The 409 for a second enrollment in a session, naming the trainee's first one (a
    trainee has one enrollment a session: one that was withdrawn or rejected included)."""
    found = await store.existing_enrollment(db, session_id, trainee_id)
    if found is None:  # not visible to this statement's snapshot: said without it
        refused = EnrollmentRefusedError("the trainee is already enrolled in this session")
        return conflict(refused, field="trainee_id")
    refused = EnrollmentRefusedError(
        f"the trainee already has an enrollment in this session ({found['status']});"
        " a trainee has one enrollment a session"
    )
    return conflict(
        refused,
        field="trainee_id",
        enrollment_id=str(found["id"]),
        enrollment_status=found["status"],
    )
