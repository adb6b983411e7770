"""Bulk nomination routes: upload a CSV, watch its progress."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile
from tpp_plumbing.auth import Role, allow
from tpp_plumbing.limits import limits_of, read_upload

from tpp_enrollment.http.deps import Svc
from tpp_enrollment.schemas import ImportJob

# Nominations arrive for any session, from country S&T departments: operators' work.
router = APIRouter(tags=["imports"], dependencies=[Depends(allow(Role.OPERATOR))])


@router.post(
    "/imports",
    status_code=202,
    responses={200: {"description": "This file was uploaded before: its job, unchanged."}},
)
async def start_import(
    file: Annotated[
        UploadFile,
        File(
            description="CSV, UTF-8, one nomination per row (at most CSV_MAX_BYTES, CSV_MAX_ROWS)."
        ),
    ],
    svc: Svc,
    request: Request,
    response: Response,
) -> ImportJob:
    """Upload nominations (CSV: trainee columns + session_id); poll the job for progress."""
    content = await read_upload(file, request)
    max_rows = limits_of(request).csv_max_rows
    job, started = await svc.imports.start_import(content, file.filename, max_rows)
    response.status_code = 202 if started else 200
    response.headers["Location"] = f"/imports/{job.id}"
    return job


@router.get("/imports/{job_id}")
async def get_import(
    job_id: uuid.UUID, svc: Svc, max_errors: Annotated[int, Query(ge=0, le=10_000)] = 1000
) -> ImportJob:
    """An import's progress (processed / total) and its invalid rows with the reasons."""
    return await svc.imports.get_import(job_id, max_errors)
