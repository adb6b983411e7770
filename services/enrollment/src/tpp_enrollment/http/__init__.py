"""Enrollment HTTP routes: request model -> service -> response model."""

from fastapi import APIRouter

from tpp_enrollment.http import enrollments, feedback, imports, trainees
from tpp_enrollment.http.deps import Services

#: Each area's routes, the busiest first (the app matches a request against them in order).
routers: tuple[APIRouter, ...] = tuple(
    module.router for module in (enrollments, trainees, feedback, imports)
)

__all__ = ["Services", "routers"]
