"""Reporting HTTP routes: JSON reports, their CSV exports, and the commitments operators set.

Every report carries ``freshness`` in its body; every response also says it in the
``X-Data-As-Of``, ``X-Consumer-Lag`` and ``X-Projection-Version`` headers (CSV files have no
body field for it).
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from tpp_contracts.vocab import SessionStatus, TechnicalField
from tpp_plumbing.web.auth import ForbiddenError, Principal, Role, allow, require_owner
from tpp_plumbing.web.limits import Offset, page_size
from tpp_plumbing.web.routing import api_router

from tpp_reporting.api.models import (
    AnnualReview,
    BreakdownReport,
    CommitmentIn,
    CommitmentProgress,
    Dimension,
    FollowUpReport,
    Report,
    SessionReport,
    SessionsReport,
    YearReport,
    YearsReport,
)
from tpp_reporting.api.pages import render_review
from tpp_reporting.freshness import Freshness
from tpp_reporting.service import ReportingService

router = api_router(prefix="/reports", tags=["reports"])
commitments = api_router(prefix="/commitments", tags=["commitments"])

#: Program-wide reports: operators and viewers (an organizer gets 403).
READ = [Depends(allow(Role.OPERATOR, Role.VIEWER))]
WRITE = [Depends(allow(Role.OPERATOR))]
#: Per-session figures: an organizer reads its own sessions' too.
SessionReader = Annotated[Principal, Depends(allow(Role.OPERATOR, Role.VIEWER, Role.ORGANIZER))]

Year = Path(ge=2000, le=2100)
Format = Literal["json", "csv"]
_FORMAT = Query("json", description="`csv` for a CSV file of the report's table.")


def _service(request: Request) -> ReportingService:
    service: ReportingService = request.app.state.service
    return service


def freshness_headers(freshness: Freshness | None) -> dict[str, str]:
    """The freshness of a report, as response headers."""
    if freshness is None:
        return {}
    as_of = freshness.data_as_of.isoformat() if freshness.data_as_of else "none"
    lag = "unknown" if freshness.consumer_lag is None else str(freshness.consumer_lag)
    return {
        "X-Data-As-Of": as_of,
        "X-Consumer-Lag": lag,
        "X-Projection-Version": str(freshness.version),
    }


def _flat(row: BaseModel) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.model_dump(mode="json", exclude={"freshness"}).items():
        if isinstance(value, dict):
            out.update({f"{key}_{k}": v for k, v in value.items()})
        elif not isinstance(value, list):
            out[key] = value
    return out


def csv_response(name: str, rows: Sequence[BaseModel], freshness: Freshness | None) -> Response:
    """Rows as a CSV attachment (header row from the first row's fields)."""
    flat = [_flat(r) for r in rows]
    buffer = io.StringIO()
    columns: list[str] = list(dict.fromkeys(k for row in flat for k in row))
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    headers = freshness_headers(freshness) | {
        "Content-Disposition": f'attachment; filename="{name}.csv"'
    }
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


def _json(report: Report, response: Response) -> Any:
    # Serialized once per computed report (not validated again per request): see Report.
    return Response(
        report.serialized(),
        media_type="application/json",
        headers=freshness_headers(report.freshness),
    )


def _either(
    report: Report, response: Response, fmt: Format, name: str, rows: Iterable[BaseModel]
) -> Any:
    if fmt == "csv":
        return csv_response(name, list(rows), report.freshness)
    return _json(report, response)


@router.get("/freshness", response_model=Freshness, dependencies=READ)
async def freshness(request: Request, response: Response) -> Freshness:
    """How fresh the projections are: newest event applied and consumer lag per partition."""
    value = await _service(request).freshness()
    response.headers.update(freshness_headers(value))
    return value


@router.get("/years", response_model=YearsReport, dependencies=READ)
async def years(
    request: Request,
    response: Response,
    first: int | None = Query(None, alias="from", ge=2000, le=2100),
    last: int | None = Query(None, alias="to", ge=2000, le=2100),
    fmt: Format = _FORMAT,
) -> Any:
    """Every year's figures and growth (the trend); ``from``/``to`` bound the years.

    Only years with a plan or a session are listed (an enrollment is always in a session's
    year): a year with neither is left out rather than shown as zeros.
    """
    report = await _service(request).years(first, last)
    return _either(report, response, fmt, "years", report.years)


@router.get("/years/{year}", response_model=YearReport, dependencies=READ)
async def year_report(
    request: Request, response: Response, year: int = Year, fmt: Format = _FORMAT
) -> Any:
    """A program year's figures and their growth against the year before."""
    report = await _service(request).year_report(year)
    return _either(report, response, fmt, f"year-{year}", [report])


@router.get("/years/{year}/breakdown/{by}", response_model=BreakdownReport, dependencies=READ)
async def breakdown(
    request: Request, response: Response, by: Dimension, year: int = Year, fmt: Format = _FORMAT
) -> Any:
    """A year's figures by country, region (UN M49), field, organizer, profession or gender."""
    report = await _service(request).breakdown(year, by)
    return _either(report, response, fmt, f"year-{year}-by-{by}", report.rows)


@router.get("/years/{year}/follow-ups", response_model=FollowUpReport, dependencies=READ)
async def follow_ups(
    request: Request, response: Response, year: int = Year, fmt: Format = _FORMAT
) -> Any:
    """Share of the year's completed trainees followed up, and the outcomes found."""
    report = await _service(request).follow_ups(year)
    return _either(report, response, fmt, f"year-{year}-follow-up-outcomes", report.outcomes)


@router.get(
    "/annual-review/{year}",
    response_model=AnnualReview,
    dependencies=READ,
    responses={200: {"content": {"text/html": {}, "text/csv": {}}}},
)
async def annual_review(
    request: Request,
    response: Response,
    year: int = Year,
    fmt: Literal["json", "csv", "html"] = Query(
        "json",
        description="`csv` for a CSV file of one of its tables; `html` for the review as the"
        " page /annual-review/{year} shows it.",
    ),
    table: Literal["organizers", "countries"] = Query(
        "organizers", description="Which table of the review the CSV holds."
    ),
) -> Any:
    """A year's review: held, trained, reached, fields, organizers, growth, next year's plan."""
    report = await _service(request).annual_review(year)
    if fmt == "html":
        return HTMLResponse(render_review(report), headers=freshness_headers(report.freshness))
    rows = report.organizers if table == "organizers" else report.countries
    return _either(report, response, fmt, f"annual-review-{year}-{table}", rows)


@router.get("/sessions", response_model=SessionsReport)
async def sessions(
    request: Request,
    response: Response,
    who: SessionReader,
    year: int | None = Query(None, ge=2000, le=2100),
    field: TechnicalField | None = None,
    organizer_id: uuid.UUID | None = None,
    status: SessionStatus | None = None,
    limit: int = page_size(500),
    offset: Offset = 0,
    fmt: Format = _FORMAT,
) -> Any:
    """Per-session figures: fill rate, waitlist, completion and no-show rates, evaluations.

    An organizer gets its own sessions only (403 when it asks for another organizer's).
    """
    if who.role is Role.ORGANIZER:
        if organizer_id not in (None, who.organizer_id):
            raise ForbiddenError("an organizer reads its own sessions only", role=who.role.value)
        organizer_id = who.organizer_id
    report = await _service(request).sessions(
        year=year,
        field=field.value if field else None,
        organizer_id=organizer_id,
        status=status.value if status else None,
        limit=limit,
        offset=offset,
    )
    return _either(report, response, fmt, "sessions", report.rows)


@router.get("/sessions/{session_id}", response_model=SessionReport)
async def session_report(
    session_id: uuid.UUID, request: Request, response: Response, who: SessionReader
) -> Any:
    """One session's figures (an organizer: its own sessions only)."""
    report = await _service(request).session_report(session_id)
    if who.role is Role.ORGANIZER:
        require_owner(who, report.organizer_id, "session")
    return _json(report, response)


@commitments.post("", status_code=201, response_model=CommitmentProgress, dependencies=WRITE)
async def create_commitment(
    body: CommitmentIn, request: Request, response: Response
) -> CommitmentProgress:
    """Configure a multi-year target (optionally for one field or UN M49 region)."""
    created = await _service(request).create_commitment(body)
    response.headers["Location"] = f"/commitments/{created.commitment_id}"
    return created


@commitments.get("", response_model=list[CommitmentProgress], dependencies=READ)
async def list_commitments(request: Request, fmt: Format = _FORMAT) -> Any:
    """Every commitment with its progress, share of time elapsed and the pace still needed."""
    if fmt == "csv":
        items, freshness = await _service(request).commitments_with_freshness()
        return csv_response("commitments", items, freshness)
    return await _service(request).commitments()


@commitments.get("/{commitment_id}", response_model=CommitmentProgress, dependencies=READ)
async def get_commitment(
    commitment_id: uuid.UUID, request: Request, response: Response
) -> CommitmentProgress:
    """One commitment's progress."""
    item = await _service(request).commitment(commitment_id)
    response.headers.update(freshness_headers(item.freshness))
    return item


@commitments.put("/{commitment_id}", response_model=CommitmentProgress, dependencies=WRITE)
async def update_commitment(
    commitment_id: uuid.UUID, body: CommitmentIn, request: Request
) -> CommitmentProgress:
    """Replace a commitment's definition."""
    return await _service(request).update_commitment(commitment_id, body)


@commitments.delete("/{commitment_id}", status_code=204, dependencies=WRITE)
async def delete_commitment(commitment_id: uuid.UUID, request: Request) -> Response:
    """Stop tracking a commitment."""
    await _service(request).delete_commitment(commitment_id)
    return Response(status_code=204)
