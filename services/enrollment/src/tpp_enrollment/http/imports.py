"""Bulk nomination routes: upload a CSV, watch its progress."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, UploadFile
from tpp_plumbing.auth import Role, allow

from tpp_enrollment.http.deps import Svc
from tpp_enrollment.schemas import ImportJob

# Nominations arrive for any session, from country S&T departments: operators' work.
router = APIRouter(tags=["imports"], dependencies=[Depends(allow(Role.OPERATOR))])


@router.post(
    "/imports",
    status_code=202,
    responses={200: {"description": "This file was uploaded before: its job, unchanged."}},
)
async def start_import(file: UploadFile, svc: Svc, response: Response) -> ImportJob:
    """Upload nominations (CSV: trainee columns + session_id); poll the job for progress."""
    job, started = await svc.imports.start_import(await file.read(), file.filename)
    response.status_code = 202 if started else 200
    response.headers["Location"] = f"/imports/{job.id}"
    return job


@router.get("/imports/{job_id}")
async def get_import(
    job_id: uuid.UUID, svc: Svc, max_errors: Annotated[int, Query(ge=0, le=10_000)] = 1000
) -> ImportJob:
    """An import's progress (processed / total) and its invalid rows with the reasons."""
    return await svc.imports.get_import(job_id, max_errors)
