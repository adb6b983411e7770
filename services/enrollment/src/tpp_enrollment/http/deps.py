"""Where routes find the services: on the app's state, set up by create_app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

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
