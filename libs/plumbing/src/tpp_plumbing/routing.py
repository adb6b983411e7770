"""Routers' routes added to an app as its own routes, not as included routers.

FastAPI (0.16x) keeps an included router as one route of the app that matches a request by
walking the router's routes, and walks them again to hand the request over; a router
included in an included router adds another level of both. On the enrollment service's
``POST /sessions/{id}/enrollments`` that was about 35 of the 181 µs of CPU its HTTP stack took
per request (``bench/profile_stack.py``).

A router built without ``include_router`` keyword arguments (no prefix, dependencies or tags
added at inclusion) has its routes complete: ``APIRouter.add_api_route`` already applied the
router's own prefix, tags and dependencies to each. Added as they are, the app serves them
exactly as it would included (same paths, dependencies, OpenAPI operations), without the
walk.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute, APIRouter


def add_routes(app: FastAPI, *routers: APIRouter) -> None:
    """Append the routers' routes to ``app``'s, in order (put the busiest router first).

    Raises:
        TypeError: a router holds something else than an ``APIRoute`` (an included router,
            a mount, a websocket route), which only ``include_router`` handles.
    """
    for router in routers:
        for route in router.routes:
            if not isinstance(route, APIRoute):
                raise TypeError(f"add_routes takes API routes only, not {route!r}")
            app.router.routes.append(route)
