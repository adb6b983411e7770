"""Where routes find the services: on the app's state, set up by create_app."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from tpp_plumbing.web.auth import OperatorOrOrganizer

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


def services_of(request: Request) -> Services:
    """The app's use cases (set on its state by create_app)."""
    found: Services = request.app.state.services
    return found


# async: FastAPI runs a plain-def dependency in a worker thread, a hop per request.
async def _services(request: Request) -> Services:
    return services_of(request)


Svc = Annotated[Services, Depends(_services)]


# Ownership checks are dependencies: they answer 403 before the body is validated, so a
# caller learns nothing about another organizer's data from validation errors. Each returns
# the services too: a route then has one dependency besides its parameters (FastAPI resolves
# each dependency level on every request, and these are the hottest routes).
async def _own_session(
    session_id: uuid.UUID, request: Request, who: OperatorOrOrganizer
) -> Services:
    found = services_of(request)
    await found.access.check_session(who, session_id)
    return found


async def _own_enrollment(
    enrollment_id: uuid.UUID, request: Request, who: OperatorOrOrganizer
) -> Services:
    found = services_of(request)
    await found.access.check_enrollment(who, enrollment_id)
    return found


async def _own_trainee(
    trainee_id: uuid.UUID, request: Request, who: OperatorOrOrganizer
) -> Services:
    found = services_of(request)
    await found.access.check_trainee(who, trainee_id)
    return found


#: The services, for operators and the organizer whose session it is (the route's
#: ``session_id``).
SessionSvc = Annotated[Services, Depends(_own_session)]
#: The services, for operators and the organizer of the enrollment's session
#: (``enrollment_id``).
EnrollmentSvc = Annotated[Services, Depends(_own_enrollment)]
#: The services, for operators and organizers with the trainee (``trainee_id``) enrolled in
#: one of their sessions.
TraineeSvc = Annotated[Services, Depends(_own_trainee)]
