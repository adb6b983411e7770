"""Routers added as the app's own routes serve what include_router would."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from tpp_plumbing.routing import add_routes


async def _teapot_unless_allowed(request: Request) -> None:
    if request.headers.get("x-allowed") != "yes":
        raise HTTPException(status_code=418)


def routers() -> tuple[APIRouter, APIRouter]:
    guarded = APIRouter(
        prefix="/things", tags=["things"], dependencies=[Depends(_teapot_unless_allowed)]
    )

    @guarded.get("/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    open_ = APIRouter()

    @open_.get("/things/first")
    async def first() -> dict[str, str]:
        return {"which": "first"}

    return guarded, open_


async def test_routes_keep_their_router_prefix_dependencies_and_order() -> None:
    app = FastAPI()
    add_routes(app, *routers())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        refused = await client.get("/things/7")
        allowed = await client.get("/things/7", headers={"x-allowed": "yes"})
        shadowed = await client.get("/things/first", headers={"x-allowed": "yes"})
        missing = await client.get("/nothing")

    assert refused.status_code == 418  # the router's dependency still guards its route
    assert allowed.json() == {"id": 7}
    assert shadowed.status_code == 422  # the first router's route matched first, as included
    assert missing.status_code == 404


def test_openapi_is_the_one_include_router_gives() -> None:
    added, included = FastAPI(), FastAPI()
    add_routes(added, *routers())
    for router in routers():
        included.include_router(router)

    assert added.openapi() == included.openapi()


def test_a_nested_router_is_refused() -> None:
    outer = APIRouter()
    outer.include_router(routers()[1])

    with pytest.raises(TypeError, match="API routes only"):
        add_routes(FastAPI(), outer)
