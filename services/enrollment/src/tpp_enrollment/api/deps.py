"""Where routes find the services: on the app's state, set up by create_app."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from tpp_plumbing.web.auth import OperatorOrOrganizer, Principal

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


#: An ownership check of ``AccessService``: raises unless the caller may act on the id.
Check = Callable[[AccessService, Principal, uuid.UUID], Awaitable[None]]


# Ownership checks are dependencies: they answer 403 before the body is validated, so a
# caller learns nothing about another organizer's data from validation errors. Each returns
# the services too: a route then has one dependency besides its parameters (FastAPI resolves
# each dependency level on every request, and these are the hottest routes).
def _owner(parameter: str, check: Check) -> Callable[..., Awaitable[Services]]:
    """The dependency that runs ``check`` on the route's path parameter ``parameter``."""

    # The path parameter as a default: annotations are strings here (PEP 563), which FastAPI
    # resolves in the module, where ``parameter`` is not.
    path = Path(alias=parameter)

    async def dependency(
        request: Request, who: OperatorOrOrganizer, owned: uuid.UUID = path
    ) -> Services:
        found = services_of(request)
        await check(found.access, who, owned)
        return found

    return dependency


#: The services, for operators and the organizer whose session it is (the route's
#: ``session_id``).
SessionSvc = Annotated[Services, Depends(_owner("session_id", AccessService.check_session))]
#: The services, for operators and the organizer of the enrollment's session
#: (``enrollment_id``).
EnrollmentSvc = Annotated[
    Services, Depends(_owner("enrollment_id", AccessService.check_enrollment))
]
#: The services, for operators and organizers with the trainee (``trainee_id``) enrolled in
#: one of their sessions.
TraineeSvc = Annotated[Services, Depends(_owner("trainee_id", AccessService.check_trainee))]
