"""Routers' routes added to an app as its own routes, not as included routers.

FastAPI (0.16x) keeps an included router as one route of the app that matches a request by
walking the router's routes, and walks them again to hand the request over; a router
included in an included router adds another level of both. On the enrollment service's
``POST /sessions/{id}/enrollments`` that walk was a fifth of the CPU its HTTP stack took per
request (bench/RESULTS.md, "Figures behind the code").

A router built without ``include_router`` keyword arguments (no prefix, dependencies or tags
added at inclusion) has its routes complete: ``APIRouter.add_api_route`` already applied the
router's own prefix, tags and dependencies to each. Added as they are, the app serves them
exactly as it would included (same paths, dependencies, OpenAPI operations), without the
walk.

Every route taking a body is a :class:`Route` (``api_router()``; ``add_routes`` checks), so
that a body that is not JSON is refused after the route's authorization (401/403 first).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute, APIRouter

from tpp_plumbing.web.problems import MALFORMED_JSON

#: The body of a request whose JSON did not parse. A bare ``object()``: no model, dict or list
#: accepts it (pydantic reads an instance of any other class by its attributes, as FastAPI
#: asks, and a model whose fields all have defaults would accept that).
UNPARSABLE = object()


class _DeferredJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = json.loads(await self.body())
            except ValueError as error:  # JSONDecodeError, or UnicodeDecodeError
                self.scope[MALFORMED_JSON] = getattr(error, "pos", getattr(error, "start", 0))
                self._json = UNPARSABLE
        return self._json


class Route(APIRoute):
    """An API route whose JSON body, should it not parse, is refused after the route's
    dependencies ran: an organizer who may not touch the resource gets 403 whatever it sent
    (FastAPI parses the body first and would answer its error instead). The refusal is 400
    (``tpp_plumbing.web.problems``); a body that parses but is invalid is 422 as before.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def deferred(request: Request) -> Response:
            return await handler(_DeferredJsonRequest(request.scope, request.receive))

        return deferred


def api_router(**options: Any) -> APIRouter:
    """An ``APIRouter`` of :class:`Route` (what every service's routers are)."""
    return APIRouter(route_class=Route, **options)


def add_routes(app: FastAPI, *routers: APIRouter) -> None:
    """Append the routers' routes to ``app``'s, in order (put the busiest router first).

    Raises:
        TypeError: a router holds something else than an ``APIRoute`` (an included router,
            a mount, a websocket route), which only ``include_router`` handles; or a route
            taking a body is not a :class:`Route` (made by :func:`api_router`).
    """
    for each in routers:
        for route in each.routes:
            if not isinstance(route, APIRoute):
                raise TypeError(f"add_routes takes API routes only, not {route!r}")
            if route.body_field is not None and not isinstance(route, Route):
                raise TypeError(
                    f"{route.path}: a route with a body comes from routing.api_router()"
                )
            app.router.routes.append(route)
