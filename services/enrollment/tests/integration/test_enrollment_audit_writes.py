"""Audit rows under concurrency: each command recorded once, none acknowledged unrecorded."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from .enrollment_support import enrollment_app, register, trainee_body

pytestmark = pytest.mark.integration


async def test_concurrent_commands_are_each_recorded_once_with_their_outcome(
    databases: Any,
) -> None:
    async with enrollment_app(databases, "_audit_many") as app:
        ids = [f"req-{uuid.uuid4().hex}" for _ in range(40)]
        # Every fourth body is invalid: refused commands are recorded too (422).
        bodies = [trainee_body() if i % 4 else {} for i in range(40)]
        responses = await asyncio.gather(
            *(
                app.http.post("/trainees", json=body, headers={"X-Request-ID": rid})
                for rid, body in zip(ids, bodies, strict=True)
            )
        )
        assert [r.status_code for r in responses] == [201 if i % 4 else 422 for i in range(40)]
        rows = await app.fetch(
            "SELECT request_id, status FROM audit_log WHERE request_id = ANY($1::text[])", ids
        )
        recorded = sorted((r["request_id"], r["status"]) for r in rows)
        assert recorded == sorted(
            (rid, r.status_code) for rid, r in zip(ids, responses, strict=True)
        )


async def test_a_command_whose_record_cannot_be_written_is_not_acknowledged(
    databases: Any,
) -> None:
    async with enrollment_app(databases, "_audit_down") as app:
        # The audit table refuses every new row (as a full disk or a lost grant would).
        await app.fetch(
            "ALTER TABLE audit_log ADD CONSTRAINT refuse_all CHECK (status < 0) NOT VALID"
        )
        refused = await asyncio.gather(
            *(app.http.post("/trainees", json=trainee_body()) for _ in range(10))
        )
        assert {r.status_code for r in refused} == {503}
        assert {r.json()["title"] for r in refused} == {"Audit log unavailable"}
        await app.fetch("ALTER TABLE audit_log DROP CONSTRAINT refuse_all")
        rid = f"req-{uuid.uuid4().hex}"
        again = await app.http.post("/trainees", json=trainee_body(), headers={"X-Request-ID": rid})
        assert again.status_code == 201  # the writer carries on once the table takes rows
        [row] = await app.fetch("SELECT status FROM audit_log WHERE request_id = $1", rid)
        assert row["status"] == 201


async def test_an_enrollment_commits_its_audit_row_in_its_own_statement(databases: Any) -> None:
    async with enrollment_app(databases, "_audit_enroll") as app:
        session_id = await app.open_session(capacity=2)
        trainees = [await register(app) for _ in range(4)]
        ids = [f"req-{uuid.uuid4().hex}" for _ in range(5)]
        answers = []
        for rid, trainee_id in zip(ids, [*trainees, trainees[0]], strict=True):
            answers.append(
                await app.http.post(
                    f"/sessions/{session_id}/enrollments",
                    json={"trainee_id": trainee_id},
                    headers={"X-Request-ID": rid},
                )
            )
        assert [a.status_code for a in answers] == [201, 201, 201, 201, 409]
        assert [a.json().get("status") for a in answers[:4]] == ["accepted"] * 2 + [
            "waitlisted"
        ] * 2
        rows = await app.fetch(
            "SELECT request_id, operation, target, status, at FROM audit_log"
            " WHERE request_id = ANY($1::text[])",
            ids,
        )
        by_request = {r["request_id"]: r for r in rows}
        assert len(rows) == 5  # each command once, the refused one (409) too
        assert [by_request[rid]["status"] for rid in ids] == [201, 201, 201, 201, 409]
        assert {r["operation"] for r in rows} == {"POST /sessions/{session_id}/enrollments"}
        assert {r["target"] for r in rows} == {f"session_id={session_id}"}
        # Written by the enrollment's own statement: the same transaction, so the same now().
        created = await app.fetch(
            "SELECT e.created_at FROM enrollment e WHERE e.id = ANY($1::uuid[])",
            [a.json()["id"] for a in answers[:4]],
        )
        assert sorted(r["created_at"] for r in created) == sorted(
            by_request[rid]["at"] for rid in ids[:4]
        )


async def test_an_enrollment_whose_record_cannot_be_written_is_neither_acknowledged_nor_kept(
    databases: Any,
) -> None:
    async with enrollment_app(databases, "_audit_enroll_down") as app:
        session_id = await app.open_session(capacity=5)
        trainee_id = await register(app)
        await app.fetch(
            "ALTER TABLE audit_log ADD CONSTRAINT refuse_all CHECK (status < 0) NOT VALID"
        )
        refused = await app.http.post(
            f"/sessions/{session_id}/enrollments",
            json={"trainee_id": trainee_id},
            headers={"X-Request-ID": "req-refused"},
        )
        assert refused.status_code == 503
        assert refused.headers["x-request-id"] == "req-refused"
        assert refused.json()["title"] == "Audit log unavailable"
        assert await app.fetch("SELECT id FROM enrollment") == []
        assert (
            await app.fetch(
                "SELECT id FROM outbox_message WHERE topic = 'enrollment.enrollments.v1'"
            )
            == []
        )
