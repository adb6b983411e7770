"""Enrollment HTTP routes."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response

from tpp_enrollment.service import (
    Enrollment,
    EnrollmentIn,
    EnrollmentService,
    SessionView,
    Trainee,
    TraineeIn,
)

router = APIRouter()


def _service(request: Request) -> EnrollmentService:
    service: EnrollmentService = request.app.state.service
    return service


@router.post(
    "/trainees",
    status_code=201,
    response_model=Trainee,
    tags=["trainees"],
    responses={200: {"description": "Already registered: the existing trainee."}},
)
async def register_trainee(body: TraineeIn, request: Request, response: Response) -> Trainee:
    """Register a trainee (201), or return the one with this passport and country (200)."""
    trainee, created = await _service(request).register_trainee(body)
    response.status_code = 201 if created else 200
    return trainee


@router.post(
    "/sessions/{session_id}/enrollments",
    status_code=201,
    response_model=Enrollment,
    tags=["enrollments"],
)
async def enroll(session_id: uuid.UUID, body: EnrollmentIn, request: Request) -> Enrollment:
    """Ask for a place in a session."""
    return await _service(request).enroll(session_id, body)


@router.get("/sessions/{session_id}", response_model=SessionView, tags=["sessions"])
async def session_view(session_id: uuid.UUID, request: Request) -> SessionView:
    """This service's view of a registry session (from its events)."""
    return await _service(request).get_session_view(session_id)
