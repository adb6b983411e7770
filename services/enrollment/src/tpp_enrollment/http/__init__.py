"""Enrollment HTTP routes: request model -> service -> response model."""

from fastapi import APIRouter

from tpp_enrollment.http import enrollments, feedback, imports, trainees
from tpp_enrollment.http.deps import Services

router = APIRouter()
for module in (trainees, enrollments, feedback, imports):
    router.include_router(module.router)

__all__ = ["Services", "router"]
