"""The audit log: commands of operators and organizers recorded per service, append-only."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from tpp_plumbing.db.engine import asyncpg_dsn
from tpp_plumbing.web.auth import dev_token
from tpp_testkit import Platform

pytestmark = pytest.mark.integration


async def audit(client: Any, **params: Any) -> dict[str, Any]:
    response = await client.get("/audit", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def test_commands_are_recorded_with_who_what_target_and_outcome(platform: Platform) -> None:
    registry = platform.registry
    name = f"Audit Institute {uuid.uuid4().hex[:8]}"
    request_id = f"req-{uuid.uuid4().hex}"
    created = await registry.http.post(
        "/organizers",
        json={"name": name, "kind": "university", "country": "CN", "contact": "office@example.org"},
        headers={"X-Request-ID": request_id},
    )
    assert created.status_code == 201
    assert created.headers["x-request-id"] == request_id
    organizer_id = created.json()["id"]
    own = registry.as_role("organizer", organizer_id)
    other = registry.as_role("organizer", uuid.uuid4())
    assert (await own.patch(f"/organizers/{organizer_id}", json={"province": "Hubei"})).is_success
    refused = await other.patch(f"/organizers/{organizer_id}", json={"province": "Jilin"})
    assert refused.status_code == 403
    await own.get(f"/organizers/{organizer_id}")  # a read: not recorded
    viewer = registry.as_role("viewer")
    await viewer.post("/organizers", json={})  # a viewer issues no commands: not recorded

    page = await audit(registry.http, target=organizer_id)

    records = page["items"]
    assert [(r["method"], r["role"], r["status"]) for r in records] == [
        ("PATCH", "organizer", 403),
        ("PATCH", "organizer", 200),
        ("POST", "operator", 201),
    ]
    create = records[2]
    assert create["operation"] == "POST /organizers"
    assert create["target"] == f"id={organizer_id}"
    assert create["request_id"] == request_id
    assert create["subject"] == "dev-operator"
    assert records[1]["operation"] == "PATCH /organizers/{organizer_id}"
    assert records[1]["organizer_id"] == organizer_id
    assert records[1]["target"] == f"organizer_id={organizer_id}"
    assert records[0]["organizer_id"] != organizer_id
    # Ids only: nothing of the request bodies.
    text = str(page)
    assert name not in text
    assert "office@example.org" not in text
    assert "Hubei" not in text


async def test_no_personal_data_in_enrollment_records_and_filters_paginate(
    platform: Platform,
) -> None:
    enrollment = platform.enrollment
    passport = f"CANARY{uuid.uuid4().hex[:8].upper()}"
    subject = f"audit-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {dev_token('operator', subject=subject)}"}
    ids = []
    for i in range(3):
        response = await enrollment.http.post(
            "/trainees",
            headers=headers,
            json={
                "full_name": f"Zyxwv Canary {i}",
                "country": "KE",
                "gender": "female",
                "profession": "expert",
                "passport_number": f"{passport}{i}",
            },
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])

    first = await audit(enrollment.http, subject=subject, limit=2)
    second = await audit(enrollment.http, subject=subject, limit=2, cursor=first["next_cursor"])

    assert [r["target"] for r in first["items"] + second["items"]] == [
        f"id={i}" for i in reversed(ids)
    ]
    assert second["next_cursor"] is None
    assert {r["operation"] for r in first["items"]} == {"POST /trainees"}
    assert "Zyxwv" not in str(first) + str(second)
    assert passport not in str(first) + str(second)
    only_403 = await audit(enrollment.http, subject=subject, status=403)
    assert only_403["items"] == []


@pytest.mark.parametrize("service", ["registry", "enrollment", "reporting"])
async def test_the_audit_log_is_append_only_for_the_service_role(
    platform: Platform, service: str
) -> None:
    client = getattr(platform, service).http
    if service == "reporting":
        await client.post(
            "/commitments",
            json={"name": "Audit target", "target": 1, "start_year": 2090, "end_year": 2091},
        )
    else:
        await client.post("/organizers" if service == "registry" else "/trainees", json={})
    assert (await audit(client, limit=1))["items"], "a command was recorded"
    # The service's own login role, the table's owner, is refused too.
    conn = await asyncpg.connect(asyncpg_dsn(platform.urls[service]))
    try:
        for statement in (
            "UPDATE audit_log SET status = 200",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM audit_log") >= 1
    finally:
        await conn.close()
