"""Every route of the three OpenAPI documents x every role: allowed or denied as the table says.

Roles: no token, operator, the organizer who owns the data addressed (organizer-own), another
organizer (organizer-other), viewer. Denied: 401 without a token (with a Bearer challenge),
403 for a wrong role or another organizer's data, both as problem documents. Allowed: any
answer but 401/403 (the request reached the route: 2xx, or 404/409/422 from the use case).
The routes come from the running apps; a route missing from RIGHTS fails the test.
"""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Route
from tpp_testkit import Platform, fresh_year

pytestmark = pytest.mark.integration

ROLES = ("none", "viewer", "organizer-other", "organizer-own", "operator")

# Who may call a route: PUBLIC everyone; OPERATOR operators only; OWN operators and the
# organizer owning the addressed data; ORGANIZERS operators and every organizer (for itself);
# READER operators and viewers (program-wide reports); READER_OWN readers and the owning
# organizer (per-session report figures).
PUBLIC, OPERATOR, OWN, READER, READER_OWN = "public", "operator", "own", "reader", "reader+own"
ORGANIZERS = "organizers"
ALLOWED = {
    PUBLIC: set(ROLES),
    OPERATOR: {"operator"},
    OWN: {"operator", "organizer-own"},
    ORGANIZERS: {"operator", "organizer-own", "organizer-other"},
    READER: {"operator", "viewer"},
    READER_OWN: {"operator", "viewer", "organizer-own"},
}
HEALTH = {
    "GET /asyncapi.json": PUBLIC,
    "GET /health/live": PUBLIC,
    "GET /health/ready": PUBLIC,
    "GET /health/lag": PUBLIC,
    "GET /metrics": PUBLIC,
    "GET /audit": OPERATOR,
}
# The expected rights: service -> "METHOD /path template" -> who may.
RIGHTS: dict[str, dict[str, str]] = {
    "registry": HEALTH
    | {
        "GET /catalogue": PUBLIC,
        "POST /organizers": OPERATOR,
        "GET /organizers": OPERATOR,
        "GET /organizers/{organizer_id}": OWN,
        "PATCH /organizers/{organizer_id}": OWN,
        "GET /plans": OPERATOR,
        "PUT /plans/{year}": OPERATOR,
        "GET /plans/{year}": OPERATOR,
        "GET /plans/{year}/revisions": OPERATOR,
        "POST /sessions": OWN,
        "GET /sessions": OWN,
        "POST /sessions/import": OPERATOR,
        "GET /sessions/{session_id}": OWN,
        "PATCH /sessions/{session_id}": OWN,
        "POST /sessions/{session_id}/publish": OWN,
        "POST /sessions/{session_id}/close-enrollment": OWN,
        "POST /sessions/{session_id}/start": OWN,
        "POST /sessions/{session_id}/complete": OWN,
        "POST /sessions/{session_id}/cancel": OWN,
    },
    "enrollment": HEALTH
    | {
        "POST /trainees": ORGANIZERS,
        "POST /trainees/{trainee_id}/erasure": OPERATOR,
        "PUT /trainees/{trainee_id}/organizers/{organizer_id}": OPERATOR,
        "DELETE /trainees/{trainee_id}/organizers/{organizer_id}": OPERATOR,
        "GET /trainees": OPERATOR,
        "GET /trainees/{trainee_id}": OWN,
        "GET /trainees/{trainee_id}/enrollments": OWN,
        "POST /sessions/{session_id}/enrollments": OWN,
        "GET /sessions/{session_id}/enrollments": OWN,
        "GET /sessions/{session_id}": OWN,
        "GET /enrollments/{enrollment_id}": OWN,
        "POST /enrollments/{enrollment_id}/accept": OPERATOR,
        "POST /enrollments/{enrollment_id}/waitlist": OPERATOR,
        "POST /enrollments/{enrollment_id}/reject": OPERATOR,
        "POST /enrollments/{enrollment_id}/withdraw": OWN,
        "POST /enrollments/{enrollment_id}/check-in": OWN,
        "POST /enrollments/{enrollment_id}/no-show": OWN,
        "POST /enrollments/{enrollment_id}/complete": OWN,
        "POST /enrollments/{enrollment_id}/evaluation": OWN,
        "POST /enrollments/{enrollment_id}/follow-ups": OWN,
        "GET /enrollments/{enrollment_id}/follow-ups": OWN,
        "GET /follow-ups/due": OPERATOR,
        "POST /imports": OPERATOR,
        "GET /imports/nominations/example.csv": OPERATOR,
        "GET /imports/{job_id}": OPERATOR,
    },
    "reporting": HEALTH
    | {
        "GET /reports/freshness": READER,
        "GET /reports/years": READER,
        "GET /reports/years/{year}": READER,
        "GET /reports/years/{year}/breakdown/{by}": READER,
        "GET /reports/years/{year}/follow-ups": READER,
        "GET /reports/annual-review/{year}": READER,
        "GET /reports/sessions": READER_OWN,
        "GET /reports/sessions/{session_id}": READER_OWN,
        "POST /commitments": OPERATOR,
        "GET /commitments": READER,
        "GET /commitments/{commitment_id}": READER,
        "PUT /commitments/{commitment_id}": OPERATOR,
        "DELETE /commitments/{commitment_id}": OPERATOR,
        "GET /dashboard": PUBLIC,  # a shell; its data comes from the report API
        "GET /annual-review/{year}": PUBLIC,  # a shell too; the review comes from the API
    },
}
# Routes left out of the OpenAPI documents on purpose, and who may call them.
UNDOCUMENTED = {"reporting": {"GET /": PUBLIC}}


def operations(app: Any) -> dict[str, dict[str, Any]]:
    """'METHOD /path' -> its OpenAPI operation, from the app's own document."""
    found = {}
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                found[f"{method.upper()} {path}"] = operation
    return found


def undocumented_routes(app: Any) -> set[str]:
    """Routes the app serves that its OpenAPI document leaves out."""
    hidden: set[str] = set()
    for route in app.routes:
        # Included routers are wrapped (FastAPI >= 0.160): look at their effective routes.
        contexts = (
            route.effective_route_contexts()
            if hasattr(route, "effective_route_contexts")
            else [route]
        )
        for context in contexts:
            if isinstance(context, Route) and not isinstance(context, APIRoute):
                continue  # /openapi.json, /docs: FastAPI's own pages (checked below)
            if not getattr(context, "include_in_schema", True):
                hidden.update(f"{m} {context.path}" for m in context.methods if m != "HEAD")
    return hidden


async def fixture_data(platform: Platform, eventually: Any) -> dict[str, str]:
    """One organizer's session with an enrolled trainee, visible in all three services."""
    registry, enrollment, reporting = platform.registry, platform.enrollment, platform.reporting
    year = fresh_year()
    ids = {}
    for who in ("own", "other"):
        response = await registry.http.post(
            "/organizers",
            json={
                "name": f"Matrix {who} {uuid.uuid4().hex[:8]}",
                "kind": "university",
                "country": "CN",
            },
        )
        assert response.status_code == 201, response.text
        ids[who] = response.json()["id"]
    session = await registry.http.post("/sessions", json=session_body(ids["own"], year))
    assert session.status_code == 201, session.text
    session_id = session.json()["id"]
    published = await registry.http.post(f"/sessions/{session_id}/publish")
    assert published.status_code == 200, published.text

    async def projected() -> bool:
        view = await enrollment.http.get(f"/sessions/{session_id}")
        return view.status_code == 200 and view.json()["status"] == "published"

    await eventually(projected, within=60, what="the session in the enrollment view")
    trainee = await enrollment.http.post(
        "/trainees",
        json={
            "full_name": "Matrix Trainee",
            "country": "KE",
            "gender": "female",
            "profession": "expert",
            "passport_number": f"M{uuid.uuid4().hex[:10].upper()}",
        },
    )
    assert trainee.status_code == 201, trainee.text
    enrolled = await enrollment.http.post(
        f"/sessions/{session_id}/enrollments", json={"trainee_id": trainee.json()["id"]}
    )
    assert enrolled.status_code == 201, enrolled.text

    async def reported() -> bool:
        report = await reporting.http.get(f"/reports/sessions/{session_id}")
        return report.status_code == 200 and report.json().get("organizer_id") == ids["own"]

    await eventually(reported, within=60, what="the session organizer in the reporting projection")
    return {
        "organizer_id": ids["own"],
        "other_organizer_id": ids["other"],
        "session_id": session_id,
        "enrollment_id": enrolled.json()["id"],
        "trainee_id": trainee.json()["id"],
        "year": str(year),
        "by": "country",
        "commitment_id": str(uuid.uuid4()),
        "job_id": str(uuid.uuid4()),
    }


def session_body(organizer_id: str, year: int) -> dict[str, Any]:
    return {
        "organizer_id": organizer_id,
        "title": "Authorization matrix session",
        "field": "new_energy",
        "year": year,
        "start_date": date(year, 5, 1).isoformat(),
        "end_date": date(year, 5, 20).isoformat(),
        "venue_city": "Tianjin",
        "venue_country": "CN",
        "capacity": 30,
        "languages": ["en"],
    }


def request_for(key: str, operation: dict[str, Any], data: dict[str, str]) -> dict[str, Any]:
    """The request of one route: path filled from the fixture, an owner filter, a body."""
    method, path = key.split(" ", 1)
    url = re.sub(r"\{(\w+)\}", lambda m: data[m.group(1)], path)
    params = {}
    for parameter in operation.get("parameters", []):
        # Lists filtered by organizer ask for the owning organizer's rows.
        if parameter["in"] == "query" and parameter["name"] == "organizer_id":
            params["organizer_id"] = data["organizer_id"]
    content = operation.get("requestBody", {}).get("content", {})
    kwargs: dict[str, Any] = {"method": method, "url": url, "params": params}
    if key == "POST /sessions":
        # The owner is in the body: a valid session of the owning organizer.
        kwargs["json"] = session_body(data["organizer_id"], int(data["year"]))
    elif "application/json" in content:
        kwargs["json"] = {}
    return kwargs


async def test_every_route_and_role_is_allowed_or_denied_as_the_table_says(
    platform: Platform, eventually: Any
) -> None:
    data = await fixture_data(platform, eventually)
    clients = {}
    for name in ("registry", "enrollment", "reporting"):
        service = getattr(platform, name)
        clients[name] = {
            "none": service.as_role(None),
            "operator": service.as_role("operator"),
            "viewer": service.as_role("viewer"),
            "organizer-own": service.as_role("organizer", data["organizer_id"]),
            "organizer-other": service.as_role("organizer", data["other_organizer_id"]),
        }

    checked = 0
    failures: list[str] = []
    for name, expected in RIGHTS.items():
        app = getattr(platform, name).app
        documented = operations(app)
        hidden = undocumented_routes(app)
        assert set(documented) == set(expected), (
            f"{name}: routes without an entry in RIGHTS: {sorted(set(documented) - set(expected))};"
            f" entries without a route: {sorted(set(expected) - set(documented))}"
        )
        assert hidden == set(UNDOCUMENTED.get(name, {})), f"{name}: undocumented {hidden}"
        routes = {k: documented[k] for k in documented} | {
            k: {} for k in UNDOCUMENTED.get(name, {})
        }
        rights = expected | UNDOCUMENTED.get(name, {})
        for key, operation in sorted(routes.items()):
            for role in ROLES:
                request = request_for(key, operation, data)
                response = await clients[name][role].request(**request, follow_redirects=False)
                checked += 1
                allowed = role in ALLOWED[rights[key]]
                status = response.status_code
                if allowed:
                    if status in (401, 403):
                        failures.append(f"{name} {key} as {role}: {status} {response.text[:200]}")
                    # Reading the owner's own data really answers (not an empty 404).
                    reads_own = key.startswith("GET ") and rights[key] in (OWN, READER_OWN)
                    if reads_own and status != 200:
                        failures.append(f"{name} {key} as {role}: {status}, expected 200")
                    continue
                want = 401 if role == "none" else 403
                if status != want:
                    failures.append(f"{name} {key} as {role}: {status}, expected {want}")
                elif response.headers.get("content-type") != "application/problem+json":
                    failures.append(f"{name} {key} as {role}: not a problem document")
                elif want == 401 and not response.headers.get("www-authenticate", "").startswith(
                    "Bearer"
                ):
                    failures.append(f"{name} {key} as {role}: 401 without a Bearer challenge")
    routes_total = sum(len(r) for r in RIGHTS.values()) + sum(len(r) for r in UNDOCUMENTED.values())
    print(f"\nauthorization matrix: {routes_total} routes x {len(ROLES)} roles = {checked} checks")
    assert not failures, "\n".join(failures)
    assert checked == routes_total * len(ROLES)


async def test_a_body_that_is_not_json_is_refused_by_role_and_ownership_first(
    platform: Platform, eventually: Any
) -> None:
    """Every route taking JSON, every role, a body cut short: 401/403 as the table says for
    those denied (nothing about the body), 400 for those allowed."""
    data = await fixture_data(platform, eventually)
    failures: list[str] = []
    checked = 0
    for name, expected in RIGHTS.items():
        service = getattr(platform, name)
        clients = {
            "none": service.as_role(None),
            "operator": service.as_role("operator"),
            "viewer": service.as_role("viewer"),
            "organizer-own": service.as_role("organizer", data["organizer_id"]),
            "organizer-other": service.as_role("organizer", data["other_organizer_id"]),
        }
        for key, operation in sorted(operations(service.app).items()):
            if "application/json" not in operation.get("requestBody", {}).get("content", {}):
                continue
            request = request_for(key, operation, data)
            request.pop("json", None)
            request["content"] = b'{"name": "x", "kind":'
            request["headers"] = {"content-type": "application/json"}
            for role in ROLES:
                status = (await clients[role].request(**request)).status_code
                checked += 1
                # 428: the route wants If-Match before anything else. POST /sessions names its
                # owner in the body: unreadable, it is refused as such (400) to any organizer.
                if role in ALLOWED[expected[key]] or (
                    key == "POST /sessions" and role.startswith("organizer")
                ):
                    want = {400, 428} if key.startswith("PATCH /sessions") else {400}
                else:
                    want = {401} if role == "none" else {403}
                if status not in want:
                    failures.append(f"{name} {key} as {role}: {status}, expected {want}")
    assert checked > 50
    assert not failures, "\n".join(failures)


async def test_framework_pages_are_public(platform: Platform) -> None:
    for name in ("registry", "enrollment", "reporting"):
        client = getattr(platform, name).as_role(None)
        for path in ("/openapi.json", "/docs"):
            assert (await client.get(path)).status_code == 200, (name, path)
        assert (await client.get("/static/dashboard.html")).status_code in (
            (200,) if name == "reporting" else (404,)
        )


async def test_organizer_lists_hold_their_own_rows_only(
    platform: Platform, eventually: Any
) -> None:
    data = await fixture_data(platform, eventually)
    own, other = data["organizer_id"], data["other_organizer_id"]
    registry = platform.registry
    reporting = platform.reporting

    mine = await registry.as_role("organizer", own).get("/sessions")
    theirs = await registry.as_role("organizer", other).get("/sessions")
    report_mine = await reporting.as_role("organizer", own).get("/reports/sessions")
    report_theirs = await reporting.as_role("organizer", other).get("/reports/sessions")
    history = await platform.enrollment.as_role("organizer", own).get(
        f"/trainees/{data['trainee_id']}/enrollments"
    )

    assert mine.status_code == theirs.status_code == 200
    assert data["session_id"] in {s["id"] for s in mine.json()["items"]}
    assert {s["organizer_id"] for s in mine.json()["items"]} == {own}
    assert all(s["organizer_id"] == other for s in theirs.json()["items"])
    assert data["session_id"] in {r["session_id"] for r in report_mine.json()["rows"]}
    assert {r["organizer_id"] for r in report_mine.json()["rows"]} == {own}
    assert all(r["organizer_id"] == other for r in report_theirs.json()["rows"])
    assert [e["session_id"] for e in history.json()] == [data["session_id"]]


PERSONAL = ("full_name", "organization", "email", "passport_number", "birth_date")


def person(name: str) -> dict[str, Any]:
    """A trainee's full personal record."""
    return {
        "full_name": name,
        "country": "KE",
        "gender": "female",
        "profession": "expert",
        "organization": f"{name} Institute",
        "email": f"{name.lower().replace(' ', '.')}@example.org",
        "passport_number": f"P{uuid.uuid4().hex[:10].upper()}",
        "birth_date": "1980-02-03",
    }


async def published_session(platform: Platform, organizer_id: str, eventually: Any) -> str:
    """A published session of the organizer, as the enrollment service sees it."""
    session = await platform.registry.http.post(
        "/sessions", json=session_body(organizer_id, fresh_year())
    )
    assert session.status_code == 201, session.text
    session_id: str = session.json()["id"]
    published = await platform.registry.http.post(f"/sessions/{session_id}/publish")
    assert published.status_code == 200, published.text

    async def projected() -> bool:
        view = await platform.enrollment.http.get(f"/sessions/{session_id}")
        return view.status_code == 200 and view.json()["status"] == "published"

    await eventually(projected, within=60, what="the session in the enrollment view")
    return session_id


def assert_problem(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_an_organizer_nominates_and_reads_only_its_own_trainees(
    platform: Platform, eventually: Any
) -> None:
    data = await fixture_data(platform, eventually)
    a_id, b_id = data["other_organizer_id"], data["organizer_id"]
    a = platform.enrollment.as_role("organizer", a_id)
    b = platform.enrollment.as_role("organizer", b_id)
    operator = platform.enrollment.http
    a_session = await published_session(platform, a_id, eventually)
    b_later = await published_session(platform, b_id, eventually)
    # The operator registered the trainee and nominated it to B's session only.
    stranger, stored = data["trainee_id"], (await operator.get(f"/trainees/{data['trainee_id']}"))
    assert stored.json()["full_name"] == "Matrix Trainee"

    # A may neither nominate B's trainee by id nor read it; an unknown id looks the same.
    for trainee_id in (stranger, str(uuid.uuid4())):
        taken = await a.post(f"/sessions/{a_session}/enrollments", json={"trainee_id": trainee_id})
        assert_problem(taken, 403)
        assert_problem(await a.get(f"/trainees/{trainee_id}"), 403)
    assert (await operator.get(f"/sessions/{a_session}/enrollments")).json() == []

    # B sees the trainee of its session without the personal data the operator supplied, and
    # nominates it to another of its sessions.
    seen = await b.get(f"/trainees/{stranger}")
    assert seen.status_code == 200, seen.text
    assert seen.json()["withheld"] is True
    assert {k: seen.json()[k] for k in PERSONAL} == dict.fromkeys(PERSONAL)
    again = await b.post(f"/sessions/{b_later}/enrollments", json={"trainee_id": stranger})
    assert again.status_code == 201, again.text

    # A registers its own trainee: it sees what it supplied and nominates it.
    own = person("Own Nominee")
    registered = await a.post("/trainees", json=own)
    assert registered.status_code == 201, registered.text
    own_id = registered.json()["id"]
    shown = (await a.get(f"/trainees/{own_id}")).json()
    assert {k: shown[k] for k in PERSONAL} == {
        k: own[k].upper() if k == "passport_number" else own[k] for k in PERSONAL
    }
    enrolled = await a.post(f"/sessions/{a_session}/enrollments", json={"trainee_id": own_id})
    assert enrolled.status_code == 201, enrolled.text
    assert_problem(await b.get(f"/trainees/{own_id}"), 403)

    # B, holding the full record of A's trainee, attaches it: the same trainee, nothing of
    # what A stored shown (B's own spelling of the name is not echoed back either).
    record = own | {"full_name": "Own N.", "email": None}
    matched = await b.post("/trainees", json=record)
    assert matched.status_code == 200, matched.text
    assert matched.json()["id"] == own_id
    assert matched.json()["withheld"] is True
    assert {k: matched.json()[k] for k in PERSONAL} == dict.fromkeys(PERSONAL)
    attached = await b.post(f"/sessions/{b_later}/enrollments", json={"trainee_id": own_id})
    assert attached.status_code == 201, attached.text
    assert (await b.get(f"/trainees/{own_id}")).json()["withheld"] is True

    # An operator shares B's trainee with A: A sees it whole and may nominate it; once the
    # share is withdrawn, neither.
    shared = await operator.put(f"/trainees/{stranger}/organizers/{a_id}")
    assert shared.status_code == 204, shared.text
    whole = await a.get(f"/trainees/{stranger}")
    assert (whole.status_code, whole.json()["full_name"]) == (200, "Matrix Trainee")
    unshared = await operator.delete(f"/trainees/{stranger}/organizers/{a_id}")
    assert unshared.status_code == 204, unshared.text
    assert_problem(await a.get(f"/trainees/{stranger}"), 403)
    assert_problem(await operator.put(f"/trainees/{uuid.uuid4()}/organizers/{a_id}"), 404)
