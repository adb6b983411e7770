"""Reporting HTTP routes."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Path, Request

from tpp_reporting.service import ReportingService, SessionReport, YearReport

router = APIRouter(prefix="/reports", tags=["reports"])


def _service(request: Request) -> ReportingService:
    service: ReportingService = request.app.state.service
    return service


@router.get("/sessions/{session_id}", response_model=SessionReport)
async def session_report(session_id: uuid.UUID, request: Request) -> SessionReport:
    """One session's figures."""
    return await _service(request).session_report(session_id)


@router.get("/years/{year}", response_model=YearReport)
async def year_report(request: Request, year: int = Path(ge=2000, le=2100)) -> YearReport:
    """A program year's figures."""
    return await _service(request).year_report(year)
