"""Problem details, without I/O."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import BaseModel, Field
from tpp_plumbing.web.problems import ConflictError, install_problem_handlers


async def _noop(*_: Any) -> None:
    return None


class Thing(BaseModel):
    name: str = Field(min_length=1)
    size: int


def app() -> FastAPI:
    application = FastAPI()
    install_problem_handlers(application)

    @application.post("/things")
    async def create(thing: Thing) -> Thing:
        if thing.name == "taken":
            raise ConflictError("name taken", current_status="draft")
        return thing

    @application.get("/boom")
    async def boom() -> None:
        raise RuntimeError(f"secret {uuid.uuid4()}")

    return application


async def post(path: str, body: Any = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        if body is None:
            return await client.get(path)
        return await client.post(path, json=body)


async def test_validation_errors_are_problem_documents_naming_each_field() -> None:
    response = await post("/things", {"name": "", "size": "big"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["title"] == "Invalid request"
    assert sorted(e["field"] for e in body["errors"]) == ["name", "size"]


async def test_use_case_errors_keep_their_status_and_extensions() -> None:
    response = await post("/things", {"name": "taken", "size": 1})
    assert response.status_code == 409
    assert response.json() == {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": "name taken",
        "current_status": "draft",
    }


async def test_unexpected_errors_are_500_problems_without_internals() -> None:
    response = await post("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret" not in response.text
