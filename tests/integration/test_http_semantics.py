"""HTTP behaviour every service shares: problem details and Idempotency-Key."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from tpp_plumbing.web import idempotency
from tpp_plumbing.web.idempotency import IdempotencyMiddleware, mark_committed
from tpp_registry.store import tables as registry_tables
from tpp_testkit import auth_headers, serving

pytestmark = pytest.mark.integration


def organizer(**overrides: Any) -> dict[str, Any]:
    """A valid new organizer with a unique name."""
    return {
        "name": f"Harbin Institute of Technology {uuid.uuid4().hex[:8]}",
        "kind": "university",
        "country": "CN",
    } | overrides


async def test_a_retried_post_with_the_same_idempotency_key_returns_the_first_result(
    platform: Any,
) -> None:
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    body = organizer()
    first = await platform.registry.http.post("/organizers", json=body, headers=headers)
    retry = await platform.registry.http.post("/organizers", json=body, headers=headers)
    assert first.status_code == 201
    assert retry.status_code == 201
    assert retry.json()["id"] == first.json()["id"]
    assert retry.headers["idempotent-replayed"] == "true"
    other = await platform.registry.http.post("/organizers", json=organizer())
    assert other.json()["id"] != first.json()["id"]


async def test_a_replayed_response_keeps_its_etag(platform: Any) -> None:
    org = (await platform.registry.http.post("/organizers", json=organizer())).json()
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    body = {
        "organizer_id": org["id"],
        "title": "Geothermal heating",
        "field": "new_energy",
        "year": 2031,
        "start_date": "2031-04-01",
        "end_date": "2031-04-20",
        "venue_city": "Tianjin",
        "venue_country": "CN",
        "capacity": 20,
        "languages": ["en"],
    }
    first = await platform.registry.http.post("/sessions", json=body, headers=headers)
    retry = await platform.registry.http.post("/sessions", json=body, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert "etag" in first.headers
    assert retry.headers["etag"] == first.headers["etag"]
    assert retry.headers["idempotent-replayed"] == "true"


async def test_an_idempotency_key_reused_for_another_request_is_refused(platform: Any) -> None:
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    await platform.registry.http.post("/organizers", json=organizer(), headers=headers)
    reused = await platform.registry.http.post("/organizers", json=organizer(), headers=headers)
    assert reused.status_code == 422
    assert reused.headers["content-type"] == "application/problem+json"


async def test_a_retry_takes_over_a_key_its_dead_first_try_left_in_progress(
    platform: Any,
) -> None:
    """A first try killed after claiming its key (kill -9, or PostgreSQL restarted before
    the claim was released) must not leave every retry with 409 "in progress" for ever."""
    body = json.dumps(organizer()).encode()
    path = "/organizers"
    fingerprint = hashlib.sha256(path.encode() + b"\0" + b"" + b"\0" + body).hexdigest()
    stale, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    sessions = platform.registry.runtime.sessions
    async with sessions() as db, db.begin():
        for key, age in ((stale, timedelta(hours=1)), (fresh, timedelta(0))):
            await db.execute(
                text(
                    "INSERT INTO idempotency_key (key, fingerprint, created_at)"
                    " VALUES (:key, :fingerprint, now() - CAST(:age AS interval))"
                ),
                {"key": f"{path} {key}", "fingerprint": fingerprint, "age": age},
            )
    post = platform.registry.http.post
    json_type = {"content-type": "application/json"}
    # A claim still within its lease belongs to a request that may still run: wait.
    waiting = await post(path, content=body, headers=json_type | {"Idempotency-Key": fresh})
    assert waiting.status_code == 409
    assert waiting.json()["title"] == "Request in progress"
    # An abandoned one is taken over: the request runs, and its answer is kept for retries.
    first = await post(path, content=body, headers=json_type | {"Idempotency-Key": stale})
    assert first.status_code == 201, first.text
    again = await post(path, content=body, headers=json_type | {"Idempotency-Key": stale})
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]


async def test_a_command_that_committed_is_never_run_again_for_a_retry(platform: Any) -> None:
    """A command whose transaction committed but whose answer was lost (the process died
    before storing it): a retry must not run it a second time (no duplicate), and once the
    claim is stale it learns that the first try was applied."""
    sessions = platform.registry.runtime.sessions
    runs = 0

    async def command(scope: Any, receive: Any, send: Any) -> None:
        nonlocal runs
        runs += 1
        async with sessions() as db, db.begin():
            await mark_committed(db)  # what a unit of work does when it writes events
        raise RuntimeError("the process dies after the commit, before answering")

    app = IdempotencyMiddleware(command, sessions=sessions, table=registry_tables.idempotency)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    key = str(uuid.uuid4())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        first = await client.post("/things", json={"a": 1}, headers={"Idempotency-Key": key})
        assert first.status_code == 500
        soon = await client.post("/things", json={"a": 1}, headers={"Idempotency-Key": key})
        assert soon.status_code == 409
        assert soon.json()["title"] == "Request in progress"
        async with sessions() as db, db.begin():
            await db.execute(
                text(
                    "UPDATE idempotency_key SET created_at = now() - interval '1 hour'"
                    " WHERE key = :key"
                ),
                {"key": f"/things {key}"},
            )
        late = await client.post("/things", json={"a": 1}, headers={"Idempotency-Key": key})
    assert late.status_code == 409
    assert late.json()["title"] == "Request applied, answer lost"
    assert runs == 1


async def test_a_command_marks_its_key_committed_in_its_own_transaction(
    platform: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unit of work marks the request's key: the mark commits with the command's change."""
    marked: list[Any] = []
    original = idempotency.mark_committed
    key = str(uuid.uuid4())

    async def spy(session: Any) -> None:
        await original(session)
        marked.append(
            await session.scalar(
                text("SELECT status FROM idempotency_key WHERE key = :key"),
                {"key": f"/organizers {key}"},
            )
        )

    monkeypatch.setattr(idempotency, "mark_committed", spy)  # the unit of work calls it
    created = await platform.registry.http.post(
        "/organizers", json=organizer(), headers={"Idempotency-Key": key}
    )
    assert created.status_code == 201
    assert marked == [idempotency.COMMITTED]


async def test_invalid_input_gets_a_problem_document_naming_the_field(platform: Any) -> None:
    response = await platform.registry.http.post(
        "/organizers", json=organizer(country="XX", kind="pirate ship")
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert {e["field"] for e in problem["errors"]} == {"country", "kind"}
    assert "country" in problem["detail"]


async def test_a_trainee_with_a_malformed_email_is_refused_with_the_field(platform: Any) -> None:
    response = await platform.enrollment.http.post(
        "/trainees",
        json={
            "full_name": "Kofi Mensah",
            "country": "GH",
            "gender": "male",
            "profession": "scholar",
            "email": "not-an-email",
            "passport_number": "G1234567",
        },
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["email"]


# --- malformed bodies, OPTIONS, dates --------------------------------------------------------

MALFORMED = b'{"name": "x", "kind":'
COMMANDS = {
    "registry": "/organizers",
    "enrollment": "/trainees",
    "reporting": "/commitments",
}


@pytest.mark.parametrize("service", sorted(COMMANDS))
async def test_a_body_that_is_not_json_is_answered_400_on_every_service(
    platform: Any, service: str
) -> None:
    client = getattr(platform, service).http
    for body in (MALFORMED, b"{", b"\xff\xfe{}"):
        response = await client.post(
            COMMANDS[service], content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["field"] == "<body>"
        assert "cannot be parsed" in problem["detail"]


async def test_a_body_that_parses_but_is_invalid_is_still_422(platform: Any) -> None:
    response = await platform.registry.http.post("/organizers", json={"name": "x"})
    assert response.status_code == 422
    assert "kind" in [e["field"] for e in response.json()["errors"]]


@pytest.mark.parametrize(
    ("service", "path", "methods"),
    [
        ("registry", "/organizers", {"GET", "POST"}),
        ("registry", f"/sessions/{uuid.uuid4()}", {"GET", "PATCH"}),
        ("reporting", f"/commitments/{uuid.uuid4()}", {"DELETE", "GET", "PUT"}),
    ],
)
async def test_options_lists_every_method_the_path_allows(
    platform: Any, service: str, path: str, methods: set[str]
) -> None:
    response = await getattr(platform, service).http.options(path)
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == methods
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("as_of", ["0", "20250101", "1714000000", "yesterday"])
async def test_follow_ups_due_refuses_what_is_not_a_date(platform: Any, as_of: str) -> None:
    response = await platform.enrollment.http.get("/follow-ups/due", params={"as_of": as_of})
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["as_of"]
    ok = await platform.enrollment.http.get("/follow-ups/due", params={"as_of": "2025-01-01"})
    assert ok.status_code == 200


# --- Idempotency-Key over a real socket -------------------------------------------------------


def first_post(service: str) -> tuple[str, dict[str, Any]]:
    """A command of ``service`` creating something new."""
    marker = uuid.uuid4().hex[:10]
    if service == "registry":
        return "/organizers", organizer()
    if service == "enrollment":
        return "/trainees", {
            "full_name": "Idempotent Trainee",
            "country": "KE",
            "gender": "female",
            "profession": "expert",
            "passport_number": f"I{marker.upper()}",
        }
    return "/commitments", {
        "name": f"Idempotent {marker}",
        "target": 10,
        "start_year": 2090,
        "end_year": 2091,
    }


@pytest.mark.parametrize("service", ["registry", "enrollment", "reporting"])
async def test_a_retry_sent_as_soon_as_the_answer_arrived_is_a_replay(
    platform: Any, service: str
) -> None:
    """The answer is stored before it leaves: a retry right after it never finds the key
    "in progress" (it did 3 times in 20 on reporting)."""
    app = getattr(platform, service).app

    def retry_at_once(url: str) -> list[tuple[int, str | None]]:
        # A client of its own thread, as a client of its own machine: it reads the answer and
        # sends the retry while the server's event loop goes on with the first request.
        answers = []
        with httpx.Client(base_url=url, headers=auth_headers("operator")) as client:
            for _ in range(20):
                path, body = first_post(service)
                headers = {"Idempotency-Key": str(uuid.uuid4())}
                first = client.post(path, json=body, headers=headers)
                retry = client.post(path, json=body, headers=headers)
                assert first.status_code == 201, first.text
                answers.append((retry.status_code, retry.headers.get("idempotent-replayed")))
        return answers

    async with serving(app) as url:
        answers = await asyncio.to_thread(retry_at_once, url)
    assert set(answers) == {(201, "true")}, answers
