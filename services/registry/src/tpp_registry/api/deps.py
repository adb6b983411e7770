"""What every route shares: the services, If-Match parsing, ETags."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request, Response
from tpp_plumbing.web.problems import ProblemError

from tpp_registry.service import PreconditionRequiredError, Services


def services_of(request: Request) -> Services:
    """The app's use cases (set on its state by create_app)."""
    services: Services = request.app.state.services
    return services


# async: FastAPI runs a plain-def dependency in a worker thread, a hop per request.
async def _services(request: Request) -> Services:
    return services_of(request)


Svc = Annotated[Services, Depends(_services)]


def parse_if_match(value: str | None) -> int | None:
    """The version an If-Match header names: ``W/"3"``, ``"3"`` or ``3``; ``*`` means any."""
    if value is None or value.strip() == "*":
        return None
    tag = value.split(",")[0].strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise ProblemError(
            'If-Match must be an ETag like W/"3" or a version number',
            status=400,
            field="If-Match",
        )
    return int(tag)


async def _if_match(
    if_match: Annotated[
        str | None,
        Header(
            max_length=100,
            description='The version the change is based on: W/"3", "3" or 3 (412 if stale).',
        ),
    ] = None,
) -> int | None:
    return parse_if_match(if_match)


IfMatch = Annotated[int | None, Depends(_if_match)]


def expected(header: int | None, body: int | None, *, required: bool = False) -> int | None:
    """The version a change is based on: the If-Match header, else the body's ``version``."""
    found = header if header is not None else body
    if found is None and required:
        raise PreconditionRequiredError(
            "send If-Match (the ETag of the version you read) or a version in the body"
        )
    return found


def tag(response: Response, version: int) -> None:
    """Set the weak ETag of a version."""
    response.headers["ETag"] = f'W/"{version}"'


IfNoneMatch = Annotated[
    str | None,
    Header(
        max_length=1000,
        description="ETag(s) of a copy you hold: 304 (no body) while it is current.",
    ),
]


def matches(if_none_match: str, etag: str) -> bool:
    """Whether If-None-Match names ``etag`` (weak comparison, as RFC 9110 asks) or is ``*``."""
    wanted = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False
