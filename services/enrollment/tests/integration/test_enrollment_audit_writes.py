"""Audit rows under concurrency: each command recorded once, none acknowledged unrecorded."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from .enrollment_support import enrollment_app, trainee_body

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
