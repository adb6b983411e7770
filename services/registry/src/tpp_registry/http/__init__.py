"""Registry HTTP routes: organizers, sessions, the public catalogue, annual plans."""

from __future__ import annotations

from fastapi import APIRouter

from tpp_registry.http import _organizers, _plans, _sessions

router = APIRouter()
router.include_router(_organizers.router)
router.include_router(_sessions.router)
router.include_router(_plans.router)

__all__ = ["router"]
