"""Bulk nomination routes: upload a CSV, watch its progress."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, File, Query, Request, Response, UploadFile
from tpp_plumbing.web.auth import Role, allow
from tpp_plumbing.web.limits import limits_of, read_upload
from tpp_plumbing.web.routing import api_router

from tpp_enrollment.api.deps import Svc
from tpp_enrollment.api.models import ImportJob
from tpp_enrollment.service import import_rows

# Nominations arrive for any session, from country S&T departments: operators' work.
router = api_router(tags=["imports"], dependencies=[Depends(allow(Role.OPERATOR))])


_NOMINATIONS = f"""Upload nominations; poll the job (``Location``) for progress.

The file: CSV, UTF-8 (a byte-order mark is allowed), a header row naming the columns in any
order, then one nomination per row. Unknown columns are ignored; a row with an invalid value
is reported in the job's ``errors`` with the reason, the others are imported. Example:
``GET /imports/nominations/example.csv``.

{import_rows.columns_table()}
"""


@router.post(
    "/imports",
    status_code=202,
    responses={200: {"description": "This file was uploaded before: its job, unchanged."}},
    description=_NOMINATIONS,
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
    """Upload nominations (CSV); poll the job for progress."""
    content = await read_upload(file, request)
    max_rows = limits_of(request).csv_max_rows
    job, started = await svc.imports.start_import(content, file.filename, max_rows)
    response.status_code = 202 if started else 200
    response.headers["Location"] = f"/imports/{job.id}"
    return job


@router.get(
    "/imports/nominations/example.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "A nominations file."}},
)
async def nominations_example(
    session_id: Annotated[
        uuid.UUID | None,
        Query(description="The session the example nominates to (else a placeholder id)."),
    ] = None,
) -> Response:
    """An example nominations file: every column, fictional trainees; it imports cleanly
    into an open session given as ``session_id``."""
    return Response(
        import_rows.example(session_id or uuid.UUID(int=0)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="nominations-example.csv"'},
    )


@router.get("/imports/{job_id}")
async def get_import(
    job_id: uuid.UUID, svc: Svc, max_errors: Annotated[int, Query(ge=0, le=10_000)] = 1000
) -> ImportJob:
    """An import's progress (processed / total) and its invalid rows with the reasons."""
    return await svc.imports.get_import(job_id, max_errors)
