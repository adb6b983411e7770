"""Registry HTTP routes: organizers, sessions, the public catalogue, annual plans."""

from __future__ import annotations

from fastapi import APIRouter

from tpp_registry.http import _organizers, _plans, _sessions

#: Each area's routes, the busiest first (the app matches a request against them in order).
routers: tuple[APIRouter, ...] = (_sessions.router, _organizers.router, _plans.router)

__all__ = ["routers"]
