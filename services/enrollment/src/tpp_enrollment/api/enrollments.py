"""Enrollment routes: enroll, review, withdraw, attendance, completion."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Body, Response
from tpp_contracts.vocab import EnrollmentStatus
from tpp_plumbing.web.auth import Operator, OperatorOrOrganizer
from tpp_plumbing.web.limits import Offset, page_size
from tpp_plumbing.web.routing import api_router

from tpp_enrollment.api.deps import EnrollmentSvc, SessionSvc, Svc
from tpp_enrollment.api.models import (
    CompleteIn,
    Enrollment,
    EnrollmentIn,
    RejectIn,
    SessionView,
    WithdrawIn,
)

router = api_router(tags=["enrollments"])
Id = uuid.UUID
NoBody = Annotated[WithdrawIn | None, Body()]


@router.post(
    "/sessions/{session_id}/enrollments",
    status_code=201,
    response_model=Enrollment,
)
async def enroll(
    session_id: Id, body: EnrollmentIn, svc: SessionSvc, who: OperatorOrOrganizer
) -> Response:
    """Ask for a place in a session: accepted, waitlisted, or submitted for review.

    An organizer nominates only its own trainees (of its sessions, registered or matched by
    it through ``POST /trainees``, or shared with it): any other id is 403.
    """
    await svc.access.check_trainee(who, body.trainee_id)
    enrollment = await svc.enrollments.enroll(session_id, body)
    # The hot path: the service built a valid model; serialize it once, not re-validate it.
    return Response(enrollment.model_dump_json(), 201, media_type="application/json")


@router.get("/sessions/{session_id}/enrollments", response_model=list[Enrollment])
async def session_enrollments(
    session_id: Id,
    svc: SessionSvc,
    status: EnrollmentStatus | None = None,
    limit: int = page_size(100),
    offset: Offset = 0,
) -> list[Enrollment]:
    """A session's enrollments by status; the waitlist in order, with positions."""
    return await svc.queries.session_enrollments(session_id, status, limit, offset)


@router.get("/sessions/{session_id}", response_model=SessionView, tags=["sessions"])
async def session_view(session_id: Id, svc: SessionSvc) -> SessionView:
    """This service's view of a registry session (from its events)."""
    return await svc.queries.get_session_view(session_id)


@router.get("/enrollments/{enrollment_id}", response_model=Enrollment)
async def get_enrollment(enrollment_id: Id, svc: EnrollmentSvc) -> Enrollment:
    """One enrollment."""
    return await svc.queries.get_enrollment(enrollment_id)


@router.post("/enrollments/{enrollment_id}/accept", response_model=Enrollment)
async def accept(enrollment_id: Id, svc: Svc, _: Operator) -> Enrollment:
    """Operator review: give a submitted or waitlisted trainee a place (409 if none)."""
    return await svc.enrollments.accept(enrollment_id)


@router.post("/enrollments/{enrollment_id}/waitlist", response_model=Enrollment)
async def waitlist(enrollment_id: Id, svc: Svc, _: Operator) -> Enrollment:
    """Operator review: put a submitted application on the waitlist."""
    return await svc.enrollments.waitlist(enrollment_id)


@router.post("/enrollments/{enrollment_id}/reject", response_model=Enrollment)
async def reject(enrollment_id: Id, body: RejectIn, svc: Svc, _: Operator) -> Enrollment:
    """Operator review: turn a submitted application down, with a reason."""
    return await svc.enrollments.reject(enrollment_id, body.reason, body.note)


@router.post("/enrollments/{enrollment_id}/withdraw", response_model=Enrollment)
async def withdraw(enrollment_id: Id, svc: EnrollmentSvc, body: NoBody = None) -> Enrollment:
    """The trainee gives up; a freed place promotes the first waitlisted trainee."""
    return await svc.enrollments.withdraw(enrollment_id, body or WithdrawIn())


@router.post("/enrollments/{enrollment_id}/check-in", response_model=Enrollment)
async def check_in(enrollment_id: Id, svc: EnrollmentSvc) -> Enrollment:
    """An accepted trainee arrived: once the session has started (in progress, or its start
    date has come); before, a 409 problem titled "Session not started"."""
    return await svc.enrollments.check_in(enrollment_id)


@router.post("/enrollments/{enrollment_id}/no-show", response_model=Enrollment)
async def no_show(enrollment_id: Id, svc: EnrollmentSvc) -> Enrollment:
    """An accepted trainee did not come: once the session has started, as for check-in."""
    return await svc.enrollments.mark_no_show(enrollment_id)


@router.post("/enrollments/{enrollment_id}/complete", response_model=Enrollment)
async def complete(
    enrollment_id: Id, svc: EnrollmentSvc, body: Annotated[CompleteIn | None, Body()] = None
) -> Enrollment:
    """A trainee who attended completed the session: a certificate number is issued."""
    return await svc.enrollments.complete(enrollment_id, body.completed_on if body else None)
