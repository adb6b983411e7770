"""Helpers for reporting's integration tests: drive the registry and enrollment through HTTP."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

# One registry of taken years for every test of the run, whichever folder it is in.
from tpp_testkit import fresh_year as fresh_year  # re-exported for the tests here


def ok(response: httpx.Response, *codes: int) -> dict[str, Any]:
    """The JSON of a successful response (fails the test with the body otherwise)."""
    assert response.status_code in (codes or (200, 201)), response.text
    body: dict[str, Any] = response.json()
    return body


@dataclass
class Program:
    """Drives the registry and enrollment services like operators would."""

    registry: httpx.AsyncClient
    enrollment: httpx.AsyncClient
    sessions: list[dict[str, Any]] = field(default_factory=list)

    async def organizer(self, name: str) -> str:
        body = {"name": f"{name} {uuid.uuid4().hex[:6]}", "kind": "university", "country": "CN"}
        return str(ok(await self.registry.post("/organizers", json=body))["id"])

    async def plan(self, year: int, planned: int, overseas: int = 0) -> None:
        body = {"planned_sessions": planned, "planned_overseas_sessions": overseas}
        ok(await self.registry.put(f"/plans/{year}", json=body))

    async def session(
        self, organizer_id: str, year: int, *, publish: bool = True, **overrides: Any
    ) -> str:
        body = {
            "organizer_id": organizer_id,
            "title": "Solar micro-grids for rural electrification",
            "field": "new_energy",
            "year": year,
            "start_date": f"{year}-05-10",
            "end_date": f"{year}-05-30",
            "venue_city": "Hangzhou",
            "venue_country": "CN",
            "capacity": 30,
            "languages": ["en"],
        } | overrides
        session_id = str(ok(await self.registry.post("/sessions", json=body))["id"])
        if publish:
            ok(await self.registry.post(f"/sessions/{session_id}/publish"))
            await self.seen_by_enrollment(session_id, "published")
        return session_id

    async def lifecycle(self, session_id: str, *steps: str) -> None:
        status = ""
        for step in steps:
            status = ok(await self.registry.post(f"/sessions/{session_id}/{step}"))["status"]
        await self.seen_by_enrollment(session_id, status)

    async def seen_by_enrollment(self, session_id: str, status: str, within: float = 20) -> None:
        """Wait until the enrollment service's view of the session has the status."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            response = await self.enrollment.get(f"/sessions/{session_id}")
            if response.status_code == 200 and response.json()["status"] == status:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"enrollment never saw session {session_id} {status}")

    async def trainee(self, country: str, gender: str, profession: str) -> str:
        body = {
            "full_name": "Test Trainee",
            "country": country,
            "gender": gender,
            "profession": profession,
            "passport_number": f"P{uuid.uuid4().hex[:10].upper()}",
        }
        return str(ok(await self.enrollment.post("/trainees", json=body))["id"])

    async def enroll(self, session_id: str, trainee_id: str) -> dict[str, Any]:
        return ok(
            await self.enrollment.post(
                f"/sessions/{session_id}/enrollments", json={"trainee_id": trainee_id}
            )
        )

    async def step(self, enrollment_id: str, action: str, body: Any = None) -> dict[str, Any]:
        return ok(await self.enrollment.post(f"/enrollments/{enrollment_id}/{action}", json=body))
