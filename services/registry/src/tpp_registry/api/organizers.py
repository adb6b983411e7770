"""Organizer routes."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query
from tpp_contracts.vocab import OrganizerKind
from tpp_plumbing.web.auth import Operator, OperatorOrOrganizer, require_owner
from tpp_plumbing.web.limits import Offset, page_size
from tpp_plumbing.web.routing import api_router

from tpp_registry.api.deps import Svc
from tpp_registry.api.models import Country, Organizer, OrganizerIn, OrganizerPage, OrganizerPatch

router = api_router(tags=["organizers"])


async def _own_organizer(organizer_id: uuid.UUID, who: OperatorOrOrganizer) -> None:
    # A dependency: 403 comes before the body is validated.
    require_owner(who, organizer_id, "organizer")


OwnOrganizer = [Depends(_own_organizer)]


@router.post("/organizers", status_code=201)
async def create_organizer(body: OrganizerIn, services: Svc, _: Operator) -> Organizer:
    """Register an organizer (409 if its name, in any case, is taken)."""
    return await services.organizers.create(body)


@router.get("/organizers")
async def list_organizers(
    services: Svc,
    _: Operator,
    kind: OrganizerKind | None = None,
    country: Annotated[Country | None, Query(description="ISO alpha-2 code.")] = None,
    offset: Offset = 0,
    limit: int = page_size(50),
) -> OrganizerPage:
    """Organizers by name (operators; an organizer reads its own record by id)."""
    return await services.organizers.list(kind=kind, country=country, offset=offset, limit=limit)


@router.get("/organizers/{organizer_id}", dependencies=OwnOrganizer)
async def get_organizer(organizer_id: uuid.UUID, services: Svc) -> Organizer:
    """One organizer (an organizer reads only its own)."""
    return await services.organizers.get(organizer_id)


@router.patch("/organizers/{organizer_id}", dependencies=OwnOrganizer)
async def update_organizer(
    organizer_id: uuid.UUID, body: OrganizerPatch, services: Svc
) -> Organizer:
    """Change an organizer's details (an organizer changes only its own)."""
    return await services.organizers.update(organizer_id, body)
