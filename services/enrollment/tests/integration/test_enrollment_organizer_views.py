"""What an organizer sees of a trainee who also attends other organizers' sessions."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from tpp_testkit import auth_headers, service_client

from .enrollment_support import enrollment_app, register

pytestmark = pytest.mark.integration


async def test_an_organizer_sees_only_its_own_part_of_a_trainees_history(databases: Any) -> None:
    async with enrollment_app(databases, "_organizer_history") as app:
        mine, theirs = uuid.uuid4(), uuid.uuid4()
        my_sessions = [await app.open_session(capacity=5, organizer_id=mine) for _ in range(2)]
        their_session = await app.open_session(capacity=5, organizer_id=theirs)
        trainee = await register(app)
        enrolled: dict[uuid.UUID, str] = {}
        for session_id in (my_sessions[0], their_session, my_sessions[1]):
            response = await app.http.post(
                f"/sessions/{session_id}/enrollments", json={"trainee_id": trainee}
            )
            assert response.status_code == 201, response.text
            enrolled[session_id] = response.json()["id"]

        async def history(organizer: uuid.UUID | None) -> list[tuple[str, str]]:
            headers = auth_headers("organizer", organizer) if organizer else None
            async with service_client(app.app, headers=headers) as client:
                response = await client.get(f"/trainees/{trainee}/enrollments")
            assert response.status_code == 200, response.text
            return [(e["session_id"], e["id"]) for e in response.json()]

        def entries(*sessions: uuid.UUID) -> list[tuple[str, str]]:
            return [(str(s), enrolled[s]) for s in sessions]

        assert await history(None) == entries(my_sessions[0], their_session, my_sessions[1])
        assert await history(mine) == entries(*my_sessions)
        assert await history(theirs) == entries(their_session)
