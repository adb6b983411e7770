"""Input limits on the real services and PostgreSQL: bodies, strings, lists, pages, CSV files.

The registry and the enrollment service run here with small limits (as an operator would set
them through TPP_<SERVICE>_* settings), so each limit is passed by a few bytes or rows.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from tpp_enrollment.app import create_app as enrollment_app
from tpp_enrollment.config import Settings as EnrollmentSettings
from tpp_plumbing.web.auth import dev_token
from tpp_plumbing.web.edge import HttpSettings
from tpp_plumbing.web.limits import MAX_OFFSET, MULTIPART_OVERHEAD
from tpp_registry.app import create_app as registry_app
from tpp_registry.config import Settings as RegistrySettings
from tpp_testkit import ThrowawayDatabases, service_client

pytestmark = pytest.mark.integration

MAX_BODY = 4096
CSV_BYTES = 8192
CSV_ROWS = 3
PAGE = 10
SMALL: dict[str, Any] = {
    "relay_enabled": False,
    "consumers_enabled": False,
    "max_body_bytes": MAX_BODY,
    "csv_max_bytes": CSV_BYTES,
    "csv_max_rows": CSV_ROWS,
    "max_page_size": PAGE,
}


async def _client(app: FastAPI, name: str) -> AsyncIterator[httpx.AsyncClient]:
    await app.state.runtime.start()
    try:
        async with service_client(app, base_url=f"http://{name}") as client:  # an operator
            yield client
    finally:
        services: Any = app.state.services
        if hasattr(services.imports, "wait"):
            await services.imports.wait()  # a running import holds a connection: finish it first
        await app.state.runtime.stop()


@pytest.fixture(scope="module")
async def registry(databases: ThrowawayDatabases) -> AsyncIterator[httpx.AsyncClient]:
    """The registry on its own database, with small limits."""
    url = await databases.create("registry", "_limits")
    async for client in _client(registry_app(RegistrySettings(database_url=url, **SMALL)), "r"):
        yield client


@pytest.fixture(scope="module")
async def enrollment(databases: ThrowawayDatabases) -> AsyncIterator[httpx.AsyncClient]:
    """The enrollment service on its own database, with small limits."""
    url = await databases.create("enrollment", "_limits")
    app = enrollment_app(EnrollmentSettings(database_url=url, **SMALL))
    async for client in _client(app, "e"):
        yield client


def assert_problem(response: httpx.Response, status: int, **expected: Any) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {k: body.get(k) for k in expected} == expected, body
    return body


def invalid_fields(response: httpx.Response) -> list[str]:
    body = assert_problem(response, 422)
    return [e["field"] for e in body["errors"]]


def organizer(**overrides: Any) -> dict[str, Any]:
    return (
        {"name": f"Limits Institute {uuid.uuid4().hex[:8]}", "kind": "university"}
        | {"country": "CN"}
        | overrides
    )


async def organizer_names(registry: httpx.AsyncClient) -> set[str]:
    names: set[str] = set()
    offset: int | None = 0
    while offset is not None:
        page = (await registry.get("/organizers", params={"limit": PAGE, "offset": offset})).json()
        names |= {o["name"] for o in page["items"]}
        offset = page["next_offset"]
    return names


# --- request bodies --------------------------------------------------------------------------


async def test_a_body_over_the_cap_is_refused_from_its_content_length(
    registry: httpx.AsyncClient,
) -> None:
    body = organizer(contact="x" * 400, province="p" * 150)
    padded = (str(body).replace("'", '"')[:-1] + ', "pad": "' + "x" * MAX_BODY + '"}').encode()
    response = await registry.post(
        "/organizers", content=padded, headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, limit="max_body_bytes", max_bytes=MAX_BODY)
    assert body["name"] not in await organizer_names(registry)


class Endless:
    """A chunked request body that never ends; counts what the server pulled from it."""

    def __init__(self, chunk: int = 1024) -> None:
        self.chunk = chunk
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"name": "'
        while self.sent < 100 * 1024 * 1024:  # 100 MiB: the test fails long before
            self.sent += self.chunk
            yield b"x" * self.chunk


@pytest.mark.parametrize("idempotency", [False, True], ids=["plain", "idempotency-key"])
async def test_a_body_without_length_is_refused_while_it_streams_in(
    registry: httpx.AsyncClient, idempotency: bool
) -> None:
    """No Content-Length (chunked): the server stops reading once the cap is passed."""
    body = Endless()
    headers = {"content-type": "application/json"}
    if idempotency:  # that middleware reads the body itself before the route does
        headers["idempotency-key"] = uuid.uuid4().hex
    request = registry.build_request("POST", "/organizers", content=body, headers=headers)
    assert "content-length" not in request.headers
    response = await registry.send(request)
    assert_problem(response, 413, limit="max_body_bytes", max_bytes=MAX_BODY)
    assert body.sent <= MAX_BODY + 2 * body.chunk  # read up to the cap, not 100 MiB


async def test_a_body_under_the_cap_is_served(registry: httpx.AsyncClient) -> None:
    body = organizer(contact="c" * 500)
    response = await registry.post("/organizers", json=body)
    assert response.status_code == 201, response.text
    assert body["name"] in await organizer_names(registry)


# --- strings and lists -----------------------------------------------------------------------


async def test_strings_over_their_max_length_are_refused_naming_the_field(
    registry: httpx.AsyncClient, enrollment: httpx.AsyncClient
) -> None:
    assert invalid_fields(await registry.post("/organizers", json=organizer(name="n" * 301))) == [
        "name"
    ]
    assert invalid_fields(
        await registry.post("/organizers", json=organizer(contact="c" * 501))
    ) == ["contact"]
    assert invalid_fields(await registry.get("/catalogue", params={"q": "q" * 201})) == ["q"]
    trainee = {
        "full_name": "f" * 301,
        "country": "KE",
        "gender": "female",
        "profession": "expert",
        "passport_number": "P" * 31,
        "email": f"{'e' * 250}@example.org",
    }
    assert sorted(invalid_fields(await enrollment.post("/trainees", json=trainee))) == [
        "email",
        "full_name",
        "passport_number",
    ]
    assert invalid_fields(await enrollment.get("/trainees", params={"name": "n" * 301})) == ["name"]


async def test_text_with_nul_is_refused_naming_the_field(registry: httpx.AsyncClient) -> None:
    """PostgreSQL cannot store NUL: refused at the edge (422), not a server error."""
    assert invalid_fields(
        await registry.post("/organizers", json=organizer(province="a\x00b"))
    ) == ["province"]
    assert invalid_fields(await registry.get("/catalogue", params={"q": "solar\x00"})) == ["q"]


async def test_lists_over_their_max_items_are_refused_naming_the_field(
    registry: httpx.AsyncClient,
) -> None:
    created = await registry.post("/organizers", json=organizer())
    session = {
        "organizer_id": created.json()["id"],
        "title": "Seed breeding",
        "field": "agriculture_forestry",
        "year": 2031,
        "start_date": "2031-03-01",
        "end_date": "2031-03-10",
        "venue_city": "Hefei",
        "venue_country": "CN",
        "capacity": 10,
        "languages": ["en"] * 21,
    }
    assert invalid_fields(await registry.post("/sessions", json=session)) == ["languages"]
    accepted = await registry.post("/sessions", json=session | {"languages": ["en"] * 20})
    assert accepted.status_code == 201, accepted.text


# --- page sizes ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/organizers", "/sessions", "/catalogue"])
async def test_registry_pages_are_capped_by_the_setting(
    registry: httpx.AsyncClient, path: str
) -> None:
    assert (await registry.get(path, params={"limit": PAGE})).status_code == 200
    problem = assert_problem(await registry.get(path, params={"limit": PAGE + 1}), 422)
    assert problem["errors"] == [
        {"field": "limit", "in": "query", "detail": problem["errors"][0]["detail"]}
    ]
    assert str(PAGE) in problem["errors"][0]["detail"]
    assert invalid_fields(await registry.get(path, params={"limit": 0})) == ["limit"]


async def test_enrollment_pages_and_offsets_are_capped(enrollment: httpx.AsyncClient) -> None:
    assert (await enrollment.get("/trainees", params={"limit": PAGE})).status_code == 200
    assert invalid_fields(await enrollment.get("/trainees", params={"limit": PAGE + 1})) == [
        "limit"
    ]
    assert invalid_fields(await enrollment.get("/follow-ups/due", params={"limit": 1000})) == [
        "limit"
    ]
    too_deep = await enrollment.get("/trainees", params={"offset": MAX_OFFSET + 1})
    assert invalid_fields(too_deep) == ["offset"]


async def test_the_documented_maximum_is_the_setting(registry: httpx.AsyncClient) -> None:
    document = (await registry.get("/openapi.json")).json()
    limit = next(
        p for p in document["paths"]["/organizers"]["get"]["parameters"] if p["name"] == "limit"
    )
    assert limit["schema"]["maximum"] == PAGE


# --- CSV uploads -----------------------------------------------------------------------------


SESSION_COLUMNS = [
    "organizer",
    "title",
    "field",
    "start_date",
    "end_date",
    "venue_city",
    "venue_country",
    "capacity",
    "description",
]
NOMINATION_COLUMNS = [
    "full_name",
    "country",
    "gender",
    "profession",
    "passport_number",
    "organization",
    "session_id",
]


def sessions_csv(organizer_name: str, rows: int, pad: int = 0) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(SESSION_COLUMNS)
    for n in range(rows):
        title = f"Limits course {n}"
        dates = ["2032-05-01", "2032-05-09"]
        writer.writerow([organizer_name, title, "new_energy", *dates, "Xi'an", "CN", 20, "d" * pad])
    return out.getvalue().encode()


async def upload_sessions(registry: httpx.AsyncClient, content: bytes) -> httpx.Response:
    return await registry.post(
        "/sessions/import", files={"file": ("sessions.csv", content, "text/csv")}
    )


async def catalogued_titles(registry: httpx.AsyncClient, organizer_id: str) -> list[str]:
    page = await registry.get("/sessions", params={"organizer_id": organizer_id, "limit": PAGE})
    return sorted(s["title"] for s in page.json()["items"])


async def test_registry_csv_rows_over_the_cap_are_refused_and_nothing_is_created(
    registry: httpx.AsyncClient,
) -> None:
    body = organizer()
    organizer_id = (await registry.post("/organizers", json=body)).json()["id"]
    refused = await upload_sessions(registry, sessions_csv(body["name"], CSV_ROWS + 1))
    assert_problem(refused, 413, limit="csv_max_rows", max_rows=CSV_ROWS, field="file")
    assert await catalogued_titles(registry, organizer_id) == []
    accepted = await upload_sessions(registry, sessions_csv(body["name"], CSV_ROWS))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["created"] == CSV_ROWS
    assert len(await catalogued_titles(registry, organizer_id)) == CSV_ROWS


async def test_registry_csv_over_the_byte_cap_is_refused_naming_the_limit(
    registry: httpx.AsyncClient,
) -> None:
    body = organizer()
    organizer_id = (await registry.post("/organizers", json=body)).json()["id"]
    content = sessions_csv(body["name"], 1, pad=CSV_BYTES)  # one row, larger than the cap
    assert CSV_BYTES < len(content) < CSV_BYTES + MULTIPART_OVERHEAD
    refused = await upload_sessions(registry, content)
    assert_problem(refused, 413, limit="csv_max_bytes", max_bytes=CSV_BYTES, field="file")
    # Far larger than the cap: refused by the body cap of the upload route, before parsing.
    huge = sessions_csv(body["name"], 1, pad=CSV_BYTES + MULTIPART_OVERHEAD)
    assert_problem(await upload_sessions(registry, huge), 413, limit="csv_max_bytes")
    assert await catalogued_titles(registry, organizer_id) == []


def nominations_csv(rows: int, pad: int = 0) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(NOMINATION_COLUMNS)
    session_id = uuid.uuid4()
    for _ in range(rows):
        passport = f"Z{uuid.uuid4().hex[:8]}"
        writer.writerow(
            ["Nomvula Dlamini", "ZA", "female", "expert", passport, "o" * pad, session_id]
        )
    return out.getvalue().encode()


async def upload_nominations(enrollment: httpx.AsyncClient, content: bytes) -> httpx.Response:
    return await enrollment.post(
        "/imports", files={"file": ("nominations.csv", content, "text/csv")}
    )


async def test_enrollment_csv_over_the_caps_is_refused_and_no_job_starts(
    enrollment: httpx.AsyncClient,
) -> None:
    too_many = await upload_nominations(enrollment, nominations_csv(CSV_ROWS + 1))
    assert_problem(too_many, 413, limit="csv_max_rows", max_rows=CSV_ROWS, field="file")
    too_big = await upload_nominations(enrollment, nominations_csv(1, pad=CSV_BYTES))
    assert_problem(too_big, 413, limit="csv_max_bytes", max_bytes=CSV_BYTES, field="file")
    # Neither file was taken: the same bytes, now within the caps, start a new job each.
    started = await upload_nominations(enrollment, nominations_csv(CSV_ROWS))
    assert started.status_code == 202, started.text
    assert started.json()["total"] == CSV_ROWS


async def test_an_unreadable_csv_is_a_problem_not_a_server_error(platform: Any) -> None:
    """A field over the csv module's own limit (128 KiB) is a 422 naming the file."""
    field = b'"' + b"x" * (200 * 1024) + b'"'
    registry_file = b"organizer,title,field,start_date,end_date,venue_city,venue_country,capacity\n"
    registry_file += field + b",t,new_energy,2032-01-01,2032-01-02,a,CN,1\n"
    response = await platform.registry.http.post(
        "/sessions/import", files={"file": ("s.csv", registry_file, "text/csv")}
    )
    assert_problem(response, 422, field="file")
    enrollment_file = b"full_name,country,gender,profession,passport_number,session_id\n"
    enrollment_file += field + b",KE,male,expert,K1234567," + str(uuid.uuid4()).encode() + b"\n"
    response = await platform.enrollment.http.post(
        "/imports", files={"file": ("n.csv", enrollment_file, "text/csv")}
    )
    assert_problem(response, 422, field="file")


# --- rate limits ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def rate_limited(databases: ThrowawayDatabases) -> AsyncIterator[FastAPI]:
    """The registry with the rate limits on (the suite's platform runs without them)."""
    url = await databases.create("registry", "_rate")
    http = HttpSettings(rate_limit_commands="5/minute", rate_limit_imports="1/minute")
    settings = RegistrySettings(
        database_url=url, relay_enabled=False, consumers_enabled=False, http=http
    )
    app = registry_app(settings)
    await app.state.runtime.start()
    try:
        yield app
    finally:
        await app.state.runtime.stop()


def as_subject(app: FastAPI, subject: str) -> httpx.AsyncClient:
    token = dev_token("operator", subject=subject)
    return service_client(app, headers={"Authorization": f"Bearer {token}"})


async def test_commands_past_a_principals_rate_get_429_with_retry_after(
    rate_limited: FastAPI,
) -> None:
    async with (
        as_subject(rate_limited, "rate-a") as first,
        as_subject(rate_limited, "rate-b") as other,
    ):
        statuses = [
            (await first.post("/organizers", json=organizer())).status_code for _ in range(8)
        ]
        refused = await first.post("/organizers", json=organizer())
        reads = await first.get("/organizers")
        someone_else = await other.post("/organizers", json=organizer())
    assert statuses == [201] * 5 + [429] * 3
    body = assert_problem(refused, 429, limit="rate_limit_commands", rate="5/minute")
    assert 1 <= int(refused.headers["retry-after"]) <= 60, body
    assert reads.status_code == 200  # reads are not limited
    assert someone_else.status_code == 201  # the limit is the principal's


async def test_imports_past_their_own_rate_get_429(rate_limited: FastAPI) -> None:
    async with as_subject(rate_limited, "rate-import") as client:
        files = {"file": ("sessions.csv", b"title\n", "text/csv")}
        first = await client.post("/sessions/import", files=files)
        second = await client.post("/sessions/import", files=files)
        command = await client.post("/organizers", json=organizer())
    assert first.status_code != 429, first.text
    assert_problem(second, 429, limit="rate_limit_imports")
    assert command.status_code == 201  # two commands of five so far
