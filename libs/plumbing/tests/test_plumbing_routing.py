"""Routers added as the app's own routes serve what include_router would."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel
from tpp_plumbing.web.problems import install_problem_handlers
from tpp_plumbing.web.routing import add_routes, api_router


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


def test_a_route_taking_a_body_must_come_from_api_router() -> None:
    plain = APIRouter()

    @plain.post("/things")
    async def create(body: dict[str, int]) -> dict[str, int]:
        return body

    with pytest.raises(TypeError, match="api_router"):
        add_routes(FastAPI(), plain)


class Patch(BaseModel):
    """Every field optional: an object read by its attributes would pass for one."""

    name: str | None = None


async def test_a_body_that_does_not_parse_is_refused_after_the_dependencies() -> None:
    router = api_router(dependencies=[Depends(_teapot_unless_allowed)])

    @router.patch("/things")
    async def patch(body: Patch) -> dict[str, str | None]:
        return {"name": body.name}

    app = FastAPI()
    install_problem_handlers(app)
    add_routes(app, router)
    cut = b'{"name": "x'
    json_type = {"content-type": "application/json"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        refused = await client.patch("/things", content=cut, headers=json_type)
        allowed = await client.patch(
            "/things", content=cut, headers=json_type | {"x-allowed": "yes"}
        )
    assert refused.status_code == 418  # the dependency first, whatever the body
    assert allowed.status_code == 400
    assert allowed.json()["field"] == "<body>"
