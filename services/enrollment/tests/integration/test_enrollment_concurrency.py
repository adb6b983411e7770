"""Capacity under concurrency, on the real PostgreSQL: never exceeded, waitlist in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from .enrollment_support import enrollment_app, register

pytestmark = pytest.mark.integration


async def test_200_concurrent_requests_for_30_places_then_5_withdrawals_promote_5(
    databases: Any,
) -> None:
    async with enrollment_app(databases, "_concurrency") as app:
        session_id = await app.open_session(capacity=30)
        trainees = [await register(app) for _ in range(200)]

        async def enroll(trainee_id: str) -> dict[str, Any]:
            response = await app.http.post(
                f"/sessions/{session_id}/enrollments", json={"trainee_id": trainee_id}
            )
            assert response.status_code == 201, response.text
            body: dict[str, Any] = response.json()
            return body

        results = await asyncio.gather(*(enroll(t) for t in trainees))
        statuses = [r["status"] for r in results]
        assert statuses.count("accepted") == 30
        assert statuses.count("waitlisted") == 170
        positions = sorted(r["waitlist_position"] for r in results if r["status"] == "waitlisted")
        assert positions == list(range(1, 171))

        waitlist = (
            await app.http.get(
                f"/sessions/{session_id}/enrollments", params={"status": "waitlisted", "limit": 500}
            )
        ).json()
        assert [e["waitlist_position"] for e in waitlist] == list(range(1, 171))
        first_five = [e["id"] for e in waitlist[:5]]

        accepted = [r["id"] for r in results if r["status"] == "accepted"][:5]
        withdrawn = await asyncio.gather(
            *(app.http.post(f"/enrollments/{e}/withdraw") for e in accepted)
        )
        assert [w.json()["status"] for w in withdrawn] == ["withdrawn"] * 5

        now_accepted = (
            await app.http.get(
                f"/sessions/{session_id}/enrollments", params={"status": "accepted", "limit": 500}
            )
        ).json()
        assert len(now_accepted) == 30
        first_accepted = {r["id"] for r in results if r["status"] == "accepted"}
        promoted = {e["id"] for e in now_accepted} - first_accepted
        assert promoted == set(first_five)
        view = (await app.http.get(f"/sessions/{session_id}")).json()
        assert view["accepted"] == 30
        rows = await app.fetch(
            "SELECT event_type, count(*) AS n FROM outbox_message"
            " WHERE event_type LIKE 'tpp.enrollment.enrollment.%' GROUP BY event_type"
        )
        counts = {r["event_type"].split(".")[-2]: r["n"] for r in rows}
        assert counts == {"accepted": 35, "waitlisted": 170, "withdrawn": 5}
