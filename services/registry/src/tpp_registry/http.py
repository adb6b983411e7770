"""Registry HTTP routes."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from tpp_registry.service import Organizer, OrganizerIn, RegistryService, Session, SessionIn

router = APIRouter()


def _service(request: Request) -> RegistryService:
    service: RegistryService = request.app.state.service
    return service


@router.post("/organizers", status_code=201, response_model=Organizer, tags=["organizers"])
async def create_organizer(body: OrganizerIn, request: Request) -> Organizer:
    """Register an organizer."""
    return await _service(request).create_organizer(body)


@router.post("/sessions", status_code=201, response_model=Session, tags=["sessions"])
async def create_session(body: SessionIn, request: Request) -> Session:
    """Create a training session as a draft."""
    return await _service(request).create_session(body)


@router.post("/sessions/{session_id}/publish", response_model=Session, tags=["sessions"])
async def publish_session(session_id: uuid.UUID, request: Request) -> Session:
    """Publish a draft session: enrollment opens."""
    return await _service(request).publish_session(session_id)


@router.get("/sessions/{session_id}", response_model=Session, tags=["sessions"])
async def get_session(session_id: uuid.UUID, request: Request) -> Session:
    """One training session."""
    return await _service(request).get_session(session_id)
