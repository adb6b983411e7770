"""Trainee routes: registration, lookup, search and history."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Response
from tpp_plumbing.web.auth import Operator, OperatorOrOrganizer
from tpp_plumbing.web.limits import Offset, Text, page_size
from tpp_plumbing.web.routing import api_router

from tpp_enrollment.api.deps import Svc, TraineeSvc
from tpp_enrollment.api.models import Enrollment, Trainee, TraineeIn, TraineePage

router = api_router(tags=["trainees"])


@router.post(
    "/trainees",
    status_code=201,
    response_model=Trainee,
    responses={200: {"description": "Already registered: the existing trainee."}},
)
async def register_trainee(
    body: TraineeIn, svc: Svc, response: Response, who: OperatorOrOrganizer
) -> Trainee:
    """Register a trainee (201), or return the one with this passport and country (200).

    An organizer registering a new trainee may then nominate it and see its record; one whose
    full record matches an existing trainee may nominate that trainee, and gets its record
    without the personal fields unless an operator shared them (``withheld``).
    """
    organizer = None if who.is_operator else who.organizer_id
    trainee, created = await svc.trainees.register_trainee(body, organizer)
    response.status_code = 201 if created else 200
    return trainee


@router.get("/trainees", response_model=TraineePage)
async def search_trainees(
    svc: Svc,
    _: Operator,
    name: Annotated[Text | None, Query(max_length=300)] = None,
    country: Annotated[Text | None, Query(max_length=2)] = None,
    organization: Annotated[Text | None, Query(max_length=300)] = None,
    limit: int = page_size(50),
    offset: Offset = 0,
) -> TraineePage:
    """Search trainees by name, country and organization (paginated, at most 500).

    Operators only (an organizer finds its trainees through its sessions' enrollments).
    """
    return await svc.queries.search_trainees(name, country, organization, limit, offset)


@router.get("/trainees/{trainee_id}", response_model=Trainee)
async def get_trainee(trainee_id: uuid.UUID, svc: TraineeSvc, who: OperatorOrOrganizer) -> Trainee:
    """One trainee. An organizer: one of its sessions' or linked to it, with the personal
    fields only if it registered the trainee or an operator shared them (else ``withheld``)."""
    trainee = await svc.queries.get_trainee(trainee_id)
    if await svc.access.sees_personal_data(who, trainee_id):
        return trainee
    return trainee.without_personal_data()


@router.put("/trainees/{trainee_id}/organizers/{organizer_id}", status_code=204)
async def share_trainee(
    trainee_id: uuid.UUID, organizer_id: uuid.UUID, svc: Svc, _: Operator
) -> Response:
    """Share a trainee with an organizer: it may nominate the trainee and see its personal
    data (operators)."""
    await svc.trainees.share(trainee_id, organizer_id)
    return Response(status_code=204)


@router.delete("/trainees/{trainee_id}/organizers/{organizer_id}", status_code=204)
async def unshare_trainee(
    trainee_id: uuid.UUID, organizer_id: uuid.UUID, svc: Svc, _: Operator
) -> Response:
    """Withdraw a share (or the organizer's own registration): the organizer no longer
    nominates the trainee by id nor sees its personal data (operators)."""
    await svc.trainees.unshare(trainee_id, organizer_id)
    return Response(status_code=204)


@router.post("/trainees/{trainee_id}/erasure", response_model=Trainee)
async def erase_trainee(trainee_id: uuid.UUID, svc: Svc, _: Operator) -> Trainee:
    """Erase the trainee's personal data on request (operators); enrollments and figures stay.

    Name, organization, passport number, email, birth date, evaluation comments and
    follow-up notes are emptied; the id, country, gender, profession and enrollments remain,
    with ``erased_at``. A ``tpp.enrollment.trainee.erased.v1`` event follows. The trainee is
    no longer found by search nor matched by passport: registering the same passport again
    creates a new trainee. Erasing twice changes nothing.
    """
    return await svc.trainees.erase(trainee_id)


@router.get("/trainees/{trainee_id}/enrollments", response_model=list[Enrollment])
async def trainee_history(
    trainee_id: uuid.UUID, svc: TraineeSvc, who: OperatorOrOrganizer
) -> list[Enrollment]:
    """A trainee's enrollments, oldest first (an organizer: those in its own sessions)."""
    history = await svc.queries.trainee_history(trainee_id)
    if who.is_operator:
        return history
    own = await svc.access.own_sessions(who, (e.session_id for e in history))
    return [e for e in history if e.session_id in own]
