"""``GET /audit``: operators read a service's audit log (``tpp_plumbing.web.audit``),
filtered, newest first, a page at a time."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tpp_plumbing.web.auth import Role, allow
from tpp_plumbing.web.limits import NO_NUL
from tpp_plumbing.web.problems import ProblemError
from tpp_plumbing.web.routing import api_router


class AuditRecord(BaseModel):
    """One recorded command."""

    id: int
    at: datetime
    subject: str
    role: str
    organizer_id: uuid.UUID | None
    method: str
    operation: str = Field(description="Method and route template, e.g. `POST /sessions`.")
    target: str | None = Field(description="The ids addressed: `session_id=…` or `id=…`.")
    request_id: str
    status: int = Field(description="The HTTP status the command was answered with.")


class AuditPage(BaseModel):
    """Records, newest first; follow ``next_cursor`` for older ones."""

    items: list[AuditRecord]
    next_cursor: str | None


def _cursor(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(base64.urlsafe_b64decode(value.encode()).decode())
    except ValueError as error:
        raise ProblemError(
            "cursor is not one this API returned", status=422, field="cursor"
        ) from error


def audit_router(engine: AsyncEngine, table: Table) -> APIRouter:
    """``GET /audit`` (operators): the service's audit log, filtered, newest first."""
    router = api_router(tags=["audit"], dependencies=[Depends(allow(Role.OPERATOR))])
    t = table

    @router.get("/audit", response_model=AuditPage)
    async def audit(
        _: Request,
        subject: str | None = Query(None, max_length=200, pattern=NO_NUL),
        role: Role | None = None,
        organizer_id: uuid.UUID | None = None,
        operation: Annotated[
            str | None,
            Query(max_length=300, pattern=NO_NUL, description="Exact, e.g. `POST /sessions`."),
        ] = None,
        target: Annotated[
            str | None,
            Query(max_length=300, pattern=NO_NUL, description="Contains, e.g. an id."),
        ] = None,
        status: int | None = Query(None, ge=100, le=599),
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = Query(None, max_length=100, pattern=NO_NUL),
        limit: int = Query(100, ge=1, le=500),
    ) -> AuditPage:
        """Commands recorded in this service, newest first (operators only)."""
        query = select(t).order_by(t.c.id.desc()).limit(limit + 1)
        if subject is not None:
            query = query.where(t.c.subject == subject)
        if role is not None:
            query = query.where(t.c.role == role.value)
        if organizer_id is not None:
            query = query.where(t.c.organizer_id == organizer_id)
        if operation is not None:
            query = query.where(t.c.operation == operation)
        if target is not None:
            query = query.where(t.c.target.contains(target, autoescape=True))
        if status is not None:
            query = query.where(t.c.status == status)
        if since is not None:
            query = query.where(t.c.at >= since)
        if until is not None:
            query = query.where(t.c.at < until)
        before = _cursor(cursor)
        if before is not None:
            query = query.where(t.c.id < before)
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        items = [AuditRecord.model_validate(dict(r)) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = base64.urlsafe_b64encode(str(items[-1].id).encode()).decode()
        return AuditPage(items=items, next_cursor=next_cursor)

    return router
