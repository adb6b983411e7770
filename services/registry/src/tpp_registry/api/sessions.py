"""Session routes: create, read, list, revise, lifecycle, bulk import, public catalogue.

Optimistic concurrency: responses carry ``ETag: W/"<version>"``; a change sends it back
in ``If-Match`` (``W/"3"``, ``"3"`` or plain ``3``; or ``version`` in the body) and gets
412 when someone changed the session meanwhile. PATCH requires one (428 without);
lifecycle commands check it when given.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, File, Query, Request, Response, UploadFile
from tpp_contracts.vocab import SessionStatus, TechnicalField
from tpp_plumbing.web.auth import (
    ForbiddenError,
    Operator,
    OperatorOrOrganizer,
    Principal,
    Role,
    require_owner,
)
from tpp_plumbing.web.limits import Text, limits_of, page_size, read_upload
from tpp_plumbing.web.routing import api_router

from tpp_registry.api.deps import (
    IfMatch,
    IfNoneMatch,
    Svc,
    expected,
    matches,
    services_of,
    tag,
)
from tpp_registry.api.models import (
    CancelIn,
    CataloguePage,
    ImportReport,
    RawPage,
    Session,
    SessionIn,
    SessionPage,
    SessionPatch,
)
from tpp_registry.api.models import Country as CountryCode
from tpp_registry.service import Services, SessionFilter, SessionService

router = api_router()


async def _own_session(
    session_id: uuid.UUID, request: Request, who: OperatorOrOrganizer
) -> Services:
    # Operators skip the lookup; an organizer may touch only its own organizer's sessions.
    services = services_of(request)
    if not who.is_operator:
        session = await services.sessions.get(session_id)
        require_owner(who, session.organizer_id, "session")
    return services


#: The services, for operators and the organizer whose session it is (the route's
#: ``session_id``). One dependency, not a check beside ``Svc``: FastAPI resolves each
#: dependency level on every request, and each level costs CPU on the hottest routes.
SessionSvc = Annotated[Services, Depends(_own_session)]
#: Anyone may store a catalogue page, but must revalidate it (If-None-Match) before use.
CATALOGUE_CACHE_CONTROL = "public, no-cache"

#: A lifecycle use case: the session, the version If-Match expects (None: any).
Lifecycle = Callable[[SessionService, uuid.UUID, int | None], Awaitable[Session]]

Cursor = Annotated[
    str | None, Query(max_length=200, description="next_cursor of the previous page.")
]
Country = Annotated[CountryCode | None, Query(description="Venue country (ISO alpha-2).")]
ProgramYear = Annotated[int | None, Query(ge=2000, le=2100, description="The program year.")]


@router.post("/sessions", status_code=201, tags=["sessions"], response_model=Session)
async def create_session(body: SessionIn, services: Svc, who: OperatorOrOrganizer) -> Response:
    """Create a training session as a draft (an organizer, for itself only)."""
    require_owner(who, body.organizer_id, "organizer")
    return _tagged(await services.sessions.create(body), 201)


@router.post("/sessions/import", tags=["sessions"])
async def import_sessions(
    services: Svc,
    _: Operator,
    request: Request,
    file: Annotated[
        UploadFile,
        File(description="CSV, UTF-8, one session per row (at most CSV_MAX_BYTES, CSV_MAX_ROWS)."),
    ],
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
) -> ImportReport:
    """Create a year's sessions from a CSV file; the report says what became of each row.

    Columns: organizer (name) or organizer_id, title, field, start_date, end_date,
    venue_city, venue_country, capacity; optional year, languages (``en;fr``), description,
    review_required, country_limit. Rows imported before are reported as duplicates.
    """
    content = await read_upload(file, request)
    return await services.imports.import_csv(content, year, limits_of(request).csv_max_rows)


def _tagged(session: Session, status: int = 200) -> Response:
    # Sessions come from the domain's state, valid by construction: serialized once, here.
    response = Response(session.model_dump_json(), status, media_type="application/json")
    tag(response, session.version)
    return response


def _scoped(who: Principal, organizer_id: uuid.UUID | None) -> uuid.UUID | None:
    """The organizer filter a list may use: an organizer's own, whatever it asked."""
    if who.role is not Role.ORGANIZER:
        return organizer_id
    if organizer_id is not None and organizer_id != who.organizer_id:
        raise ForbiddenError("an organizer lists its own sessions only", role=who.role.value)
    return who.organizer_id


def _json(page: RawPage) -> Response:
    return Response(page.json(), media_type="application/json")


@router.get("/sessions", tags=["sessions"], response_model=SessionPage)
async def list_sessions(
    services: Svc,
    who: OperatorOrOrganizer,
    year: ProgramYear = None,
    field: TechnicalField | None = None,
    organizer_id: uuid.UUID | None = None,
    status: SessionStatus | None = None,
    overseas: bool | None = None,
    country: Country = None,
    cursor: Cursor = None,
    limit: int = page_size(50),
) -> Response:
    """Sessions by start date, filtered; follow next_cursor for the next page.

    An organizer sees its own sessions only (403 when it asks for another organizer's).
    """
    organizer_id = _scoped(who, organizer_id)
    where = SessionFilter(year, field, organizer_id, status, overseas, country)
    return _json(await services.sessions.list(where, cursor, limit))


@router.get("/sessions/{session_id}", tags=["sessions"], response_model=Session)
async def get_session(session_id: uuid.UUID, services: SessionSvc) -> Response:
    """One training session, with its ETag."""
    return _tagged(await services.sessions.get(session_id))


@router.patch("/sessions/{session_id}", tags=["sessions"], response_model=Session)
async def revise_session(
    session_id: uuid.UUID, services: SessionSvc, body: SessionPatch, if_match: IfMatch
) -> Response:
    """Change details (anything while draft; dates, venue, capacity once published)."""
    version = expected(if_match, body.version, required=True)
    return _tagged(await services.sessions.revise(session_id, body, version))


def _lifecycle(action: str, name: str, use_case: Lifecycle, doc: str) -> None:
    """Route ``POST /sessions/{session_id}/<action>`` to a lifecycle use case (If-Match is
    checked when given)."""

    async def route(session_id: uuid.UUID, services: SessionSvc, if_match: IfMatch) -> Response:
        return _tagged(await use_case(services.sessions, session_id, if_match))

    route.__name__ = route.__qualname__ = name
    route.__doc__ = doc
    path = f"/sessions/{{session_id}}/{action}"
    router.post(path, tags=["lifecycle"], response_model=Session, name=name)(route)


_lifecycle(
    "publish",
    "publish_session",
    SessionService.publish,
    "Publish a draft: it enters the catalogue and enrollment opens.",
)
_lifecycle(
    "close-enrollment",
    "close_enrollment",
    SessionService.close_enrollment,
    "Stop taking enrollments.",
)
_lifecycle(
    "start",
    "start_session",
    SessionService.start,
    "The session begins (enrollment must be closed).",
)
_lifecycle(
    "complete",
    "complete_session",
    SessionService.complete,
    "The session ended and counts as held.",
)


@router.post(
    "/sessions/{session_id}/cancel",
    tags=["lifecycle"],
    response_model=Session,
)
async def cancel_session(
    session_id: uuid.UUID, services: SessionSvc, body: CancelIn, if_match: IfMatch
) -> Response:
    """Cancel a session before it is completed, with a reason."""
    version = expected(if_match, body.version)
    return _tagged(await services.sessions.cancel(session_id, body.reason, version))


@router.get(
    "/catalogue",
    tags=["catalogue"],
    response_model=CataloguePage,
    responses={304: {"description": "Not modified: the If-None-Match ETag is current."}},
)
async def catalogue(
    services: Svc,
    q: Annotated[Text | None, Query(max_length=200, description="Words to search")] = None,
    year: ProgramYear = None,
    field: TechnicalField | None = None,
    organizer_id: uuid.UUID | None = None,
    country: Country = None,
    cursor: Cursor = None,
    limit: int = page_size(50),
    if_none_match: IfNoneMatch = None,
) -> Response:
    """The public catalogue of published sessions (no login), searchable by words.

    Each page has a strong ETag; send it back in If-None-Match to get 304 while the page
    is unchanged.
    """
    where = SessionFilter(year=year, field=field, organizer_id=organizer_id, country=country)
    page = await services.sessions.catalogue(where, q, cursor, limit)
    headers = {"ETag": page.etag, "Cache-Control": CATALOGUE_CACHE_CONTROL}
    if if_none_match is not None and matches(if_none_match, page.etag):
        return Response(status_code=304, headers=headers)
    return Response(page.body, media_type="application/json", headers=headers)
