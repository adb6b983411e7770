"""Where routes find the services: on the app's state, set up by create_app."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from tpp_plumbing.auth import OperatorOrOrganizer

from tpp_enrollment.service import (
    EnrollmentService,
    FeedbackService,
    QueryService,
    TraineeService,
)
from tpp_enrollment.service.access import AccessService
from tpp_enrollment.service.imports import ImportService


@dataclass(frozen=True, slots=True)
class Services:
    """The enrollment service's use cases, one object per area."""

    trainees: TraineeService
    enrollments: EnrollmentService
    feedback: FeedbackService
    queries: QueryService
    imports: ImportService
    access: AccessService


# async: FastAPI runs a plain-def dependency in a worker thread, a hop per request.
async def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


Svc = Annotated[Services, Depends(_services)]


# Ownership checks are dependencies: they answer 403 before the body is validated, so a
# caller learns nothing about another organizer's data from validation errors.
async def _own_session(session_id: uuid.UUID, svc: Svc, who: OperatorOrOrganizer) -> None:
    await svc.access.check_session(who, session_id)


async def _own_enrollment(enrollment_id: uuid.UUID, svc: Svc, who: OperatorOrOrganizer) -> None:
    await svc.access.check_enrollment(who, enrollment_id)


async def _own_trainee(trainee_id: uuid.UUID, svc: Svc, who: OperatorOrOrganizer) -> None:
    await svc.access.check_trainee(who, trainee_id)


#: Operators, and the organizer whose session it is (the route's ``session_id``).
OwnSession = [Depends(_own_session)]
#: Operators, and the organizer of the enrollment's session (``enrollment_id``).
OwnEnrollment = [Depends(_own_enrollment)]
#: Operators, and organizers with the trainee (``trainee_id``) enrolled in one of their sessions.
OwnTrainee = [Depends(_own_trainee)]
