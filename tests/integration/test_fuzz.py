"""Schemathesis fuzzing of the three services' OpenAPI documents, on real PostgreSQL and Kafka.

Each operation of each service gets a bounded number of generated requests, valid ones
(positive) and invalid ones (negative), sent to the service running in process on its own
throwaway databases and topics. Every response must be no server error, have a status the
document declares, a declared content type, and a body that matches the declared schema.

``TPP_FUZZ_EXAMPLES`` sets the examples per operation and mode (default 10);
``TPP_FUZZ_SEED`` replays a run (its seed is printed).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
import tpp_testkit as testing
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tpp_testkit import (
    Infrastructure,
    Platform,
    Service,
    ThrowawayDatabases,
    running_platform,
    topics_under,
)

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("TPP_FUZZ_EXAMPLES", "10"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


@dataclass
class FuzzRun:
    """What the fuzzing of one service did."""

    service: str
    cases: int = 0
    operations: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
async def fuzz_platform(
    infrastructure: Infrastructure, databases: ThrowawayDatabases, run_id: str
) -> AsyncIterator[Platform]:
    """The platform on databases and topics of its own: what fuzzing writes stays there."""
    async with (
        topics_under(infrastructure, f"{run_id}fuzz.") as kafka,
        running_platform(infrastructure, databases, kafka, "_fuzz") as platform,
    ):
        yield platform
        await platform.enrollment.app.state.services.imports.wait()


@pytest.fixture(scope="module")
async def known(fuzz_platform: Platform) -> dict[str, Any]:
    """Entities that exist, so that half the generated requests address real ones."""
    registry, enrollment = fuzz_platform.registry.http, fuzz_platform.enrollment.http
    headers = auth_headers()
    organizer = await registry.post(
        "/organizers",
        json={"name": "Fuzz Institute", "kind": "university", "country": "CN"},
        headers=headers,
    )
    assert organizer.status_code == 201, organizer.text
    year = 2030
    session = await registry.post(
        "/sessions",
        json={
            "organizer_id": organizer.json()["id"],
            "title": "Irrigation by drip",
            "field": "agriculture_forestry",
            "year": year,
            "start_date": f"{year}-04-01",
            "end_date": f"{year}-04-20",
            "venue_city": "Yangling",
            "venue_country": "CN",
            "capacity": 5,
            "languages": ["en"],
        },
        headers=headers,
    )
    assert session.status_code == 201, session.text
    session_id = session.json()["id"]
    published = await registry.post(f"/sessions/{session_id}/publish", headers=headers)
    assert published.status_code == 200, published.text
    plan = await registry.put(f"/plans/{year}", json={"planned_sessions": 3}, headers=headers)
    assert plan.status_code == 200, plan.text

    deadline = time.monotonic() + 30
    while True:  # the enrollment service learns of the session (and its publication) by events
        view = await enrollment.get(f"/sessions/{session_id}", headers=headers)
        if view.status_code == 200 and view.json()["status"] == "published":
            break
        assert time.monotonic() < deadline, f"the session is not open for enrollment: {view.text}"
        await asyncio.sleep(0.1)
    trainee = await enrollment.post(
        "/trainees",
        json={
            "full_name": "Fuzz Trainee",
            "country": "KE",
            "gender": "female",
            "profession": "expert",
            "passport_number": "FUZZ0001",
        },
        headers=headers,
    )
    assert trainee.status_code == 201, trainee.text
    enrolled = await enrollment.post(
        f"/sessions/{session_id}/enrollments",
        json={"trainee_id": trainee.json()["id"]},
        headers=headers,
    )
    assert enrolled.status_code == 201, enrolled.text
    commitment = await fuzz_platform.reporting.http.post(
        "/commitments",
        json={"name": "Fuzz target", "target": 100, "start_year": year, "end_year": year + 2},
        headers=headers,
    )
    assert commitment.status_code == 201, commitment.text
    return {
        "organizer_id": organizer.json()["id"],
        "session_id": session_id,
        "trainee_id": trainee.json()["id"],
        "enrollment_id": enrolled.json()["id"],
        "commitment_id": commitment.json()["commitment_id"],
        "year": year,
    }


def auth_headers() -> dict[str, str]:
    """An operator's bearer token: every operation is open to the operator role."""
    return testing.auth_headers("operator")


def _send(
    client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop, kwargs: dict[str, Any]
) -> httpx.Response:
    # requests prepares exactly the bytes schemathesis means (multipart included); the app,
    # its connections and its consumers live on the test's event loop, so the request runs
    # there while Hypothesis generates in this worker thread.
    prepared = requests.Request(
        method=kwargs["method"],
        url=kwargs["url"],
        headers=kwargs.get("headers"),
        params=kwargs.get("params"),
        cookies=kwargs.get("cookies"),
        json=kwargs.get("json"),
        data=kwargs.get("data"),
        files=kwargs.get("files"),
    ).prepare()
    body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    assert body is None or isinstance(body, bytes)
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in prepared.headers.items()}
    request = client.build_request(
        prepared.method or "GET", prepared.url or "/", headers=headers, content=body
    )
    future = asyncio.run_coroutine_threadsafe(client.send(request), loop)
    return future.result(timeout=60)


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    send: Callable[[dict[str, Any]], httpx.Response],
    run: FuzzRun,
    base_url: str,
    headers: dict[str, str],
    run_seed: int,
    known: dict[str, Any],
) -> None:
    strategy = operation.as_strategy(generation_mode=mode)
    fixed = {k: known[k] for k in re.findall(r"{(\w+)}", operation.path) if k in known}
    if fixed:
        # Half the cases address entities that exist, so the use cases behind run too.
        strategy = st.one_of(
            strategy, operation.as_strategy(generation_mode=mode, path_parameters=fixed)
        )

    @seed(run_seed)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: every failure is recorded
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def fuzz(case: Any) -> None:
        kwargs = case.as_transport_kwargs(base_url=base_url, headers=headers)
        response = send(kwargs)
        run.cases += 1
        run.statuses[response.status_code] = run.statuses.get(response.status_code, 0) + 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Exception, BaseExceptionGroup) as error:  # the checks that failed
            text = str(error) if not isinstance(error, BaseExceptionGroup) else error.message
            checks = sorted({line.strip() for line in text.splitlines() if "- ST" in line})
            summary = f"{operation.label} [{mode.value}] HTTP {response.status_code}: {checks}"
            run.failures.append(summary)
            run.details.append(f"{summary}\n{text}")

    try:
        fuzz()
    except Unsatisfiable:
        # An operation without inputs (GET /plans) has no invalid request to generate.
        if mode is not GenerationMode.NEGATIVE:
            raise


def fuzz_service(
    name: str,
    service: Service,
    loop: asyncio.AbstractEventLoop,
    run_seed: int,
    known: dict[str, Any],
) -> FuzzRun:
    """Run every operation of a service's OpenAPI document through both generation modes."""
    base_url = f"http://{name}"
    schema = schemathesis.openapi.from_dict(service.app.openapi())
    headers = auth_headers()
    run = FuzzRun(name)

    # A server error comes back as the 500 response a client would get, not as an exception.
    transport = httpx.ASGITransport(app=service.app, raise_app_exceptions=False)
    client = httpx.AsyncClient(transport=transport, base_url=base_url)

    def send(kwargs: dict[str, Any]) -> httpx.Response:
        return _send(client, loop, kwargs)

    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operation = result.ok()
        run.operations += 1
        for mode in MODES:
            _fuzz_operation(operation, mode, send, run, base_url, headers, run_seed, known)
    asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(timeout=10)
    return run


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", ["registry", "enrollment", "reporting"])
async def test_fuzz_openapi(
    name: str, fuzz_platform: Platform, known: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """0 server errors and 0 responses outside their own document, for every operation."""
    service: Service = getattr(fuzz_platform, name)
    run_seed = int(os.environ.get("TPP_FUZZ_SEED", random.randrange(2**32)))
    started = time.monotonic()
    run = await asyncio.to_thread(
        fuzz_service, name, service, asyncio.get_running_loop(), run_seed, known
    )
    if name == "enrollment":
        await service.app.state.services.imports.wait()
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(run.statuses.items()))
    with capsys.disabled():  # the counts belong in every run's output, passing or not
        print(
            f"\nfuzz {name}: {run.cases} cases over {run.operations} operations"
            f" ({EXAMPLES} per operation and mode) in {time.monotonic() - started:.0f} s,"
            f" seed {run_seed}; statuses {statuses}; failures {len(run.failures)}"
        )
    assert run.operations > 5
    assert run.cases >= run.operations  # every operation was exercised
    shown = "\n".join(sorted(set(run.failures))) + "\n\n" + "\n\n".join(run.details[:5])
    assert not run.failures, (
        f"{len(run.failures)} failing cases (TPP_FUZZ_SEED={run_seed}):\n{shown}"
    )
