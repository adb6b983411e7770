"""Organizer routes."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from tpp_contracts.vocab import OrganizerKind

from tpp_registry.http._common import Svc
from tpp_registry.models import Organizer, OrganizerIn, OrganizerPage, OrganizerPatch

router = APIRouter(tags=["organizers"])


@router.post("/organizers", status_code=201)
async def create_organizer(body: OrganizerIn, services: Svc) -> Organizer:
    """Register an organizer (409 if its name, in any case, is taken)."""
    return await services.organizers.create(body)


@router.get("/organizers")
async def list_organizers(
    services: Svc,
    kind: OrganizerKind | None = None,
    country: Annotated[str | None, Query(min_length=2, max_length=2)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> OrganizerPage:
    """Organizers by name."""
    return await services.organizers.list(kind=kind, country=country, offset=offset, limit=limit)


@router.get("/organizers/{organizer_id}")
async def get_organizer(organizer_id: uuid.UUID, services: Svc) -> Organizer:
    """One organizer."""
    return await services.organizers.get(organizer_id)


@router.patch("/organizers/{organizer_id}")
async def update_organizer(
    organizer_id: uuid.UUID, body: OrganizerPatch, services: Svc
) -> Organizer:
    """Change an organizer's details."""
    return await services.organizers.update(organizer_id, body)
