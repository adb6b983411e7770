"""Sessions through the HTTP API on real PostgreSQL: validation, lifecycle, concurrency."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

pytestmark = pytest.mark.integration


async def events_of(engine: AsyncEngine, session_id: str) -> list[dict[str, Any]]:
    """The session's events in the outbox, in the order the relay will publish them."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT payload FROM outbox_message WHERE key = :k ORDER BY id"),
            {"k": session_id},
        )
        return [json.loads(payload) for (payload,) in rows]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"end_date": "2030-05-01"}, "end_date"),
        ({"start_date": "2031-05-10", "end_date": "2031-05-30"}, "year"),
        ({"capacity": 0}, "capacity"),
        ({"venue_country": "XX"}, "venue_country"),
        ({"field": "astrology"}, "field"),
        ({"languages": []}, "languages"),
    ],
)
async def test_invalid_sessions_are_refused_naming_the_field(
    registry: Any, new_organizer: Any, session_body: Any, overrides: Any, field: str
) -> None:
    organizer = await new_organizer()
    response = await registry.post(
        "/sessions", json=session_body(organizer["id"], 2030, **overrides)
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]]


async def test_a_session_needs_a_known_organizer(registry: Any, session_body: Any) -> None:
    response = await registry.post(
        "/sessions", json=session_body("00000000-0000-0000-0000-000000000000", 2030)
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "organizer_id"


async def test_a_session_abroad_is_overseas(new_session: Any) -> None:
    assert (await new_session(venue_country="ke"))["overseas"] is True
    assert (await new_session(venue_country="CN"))["overseas"] is False


async def test_a_session_runs_from_draft_to_completed_with_an_event_per_step(
    registry: Any, new_session: Any, engine: AsyncEngine
) -> None:
    session = await new_session()
    sid = session["id"]
    for step, status in [
        ("publish", "published"),
        ("close-enrollment", "enrollment_closed"),
        ("start", "in_progress"),
        ("complete", "completed"),
    ]:
        response = await registry.post(f"/sessions/{sid}/{step}")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == status
    got = await registry.get(f"/sessions/{sid}")
    assert got.json()["status"] == "completed"
    assert got.headers["etag"] == 'W/"5"'
    types = [e["type"].split(".")[-2] for e in await events_of(engine, sid)]
    assert types == ["created", "published", "enrollment_closed", "started", "completed"]


async def test_an_invalid_transition_is_a_409_naming_state_and_allowed_moves(
    registry: Any, new_session: Any
) -> None:
    session = await new_session()
    response = await registry.post(f"/sessions/{session['id']}/start")
    assert response.status_code == 409
    problem = response.json()
    assert problem["current_status"] == "draft"
    assert problem["allowed_transitions"] == ["publish", "cancel"]


async def test_a_cancelled_session_stays_cancelled(registry: Any, new_session: Any) -> None:
    sid = (await new_session())["id"]
    await registry.post(f"/sessions/{sid}/publish")
    cancelled = await registry.post(f"/sessions/{sid}/cancel", json={"reason": "venue closed"})
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    again = await registry.post(f"/sessions/{sid}/publish")
    assert again.status_code == 409
    assert again.json()["allowed_transitions"] == []
    cancel_twice = await registry.post(f"/sessions/{sid}/cancel", json={"reason": "again"})
    assert cancel_twice.status_code == 409


async def test_a_draft_is_edited_freely_and_a_published_session_only_in_dates_venue_capacity(
    registry: Any, new_session: Any, engine: AsyncEngine
) -> None:
    session = await new_session()
    sid = session["id"]
    edited = await registry.patch(
        f"/sessions/{sid}",
        json={"title": "Micro-grids", "venue_country": "TZ", "venue_city": "Arusha"},
        headers={"If-Match": 'W/"1"'},
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["overseas"] is True
    published = await registry.post(f"/sessions/{sid}/publish")
    etag = published.headers["etag"]
    fixed = await registry.patch(
        f"/sessions/{sid}", json={"title": "X"}, headers={"If-Match": etag}
    )
    assert fixed.status_code == 409
    assert fixed.json()["fields"] == ["title"]
    moved = await registry.patch(
        f"/sessions/{sid}",
        json={"capacity": 45, "venue_city": "Dodoma"},
        headers={"If-Match": etag},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["capacity"] == 45
    types = [e["type"].split(".")[-2] for e in await events_of(engine, sid)]
    assert types == ["created", "draft_updated", "published", "venue_changed", "capacity_changed"]
    versions = [e["data"]["version"] for e in await events_of(engine, sid)]
    assert versions == [1, 2, 3, 4, 5]


async def test_a_stale_version_is_refused_so_no_change_is_silently_overwritten(
    registry: Any, new_session: Any
) -> None:
    sid = (await new_session())["id"]
    etag = (await registry.get(f"/sessions/{sid}")).headers["etag"]
    first = await registry.patch(
        f"/sessions/{sid}", json={"capacity": 31}, headers={"If-Match": etag}
    )
    assert first.status_code == 200
    second = await registry.patch(
        f"/sessions/{sid}", json={"capacity": 32}, headers={"If-Match": etag}
    )
    assert second.status_code == 412
    assert second.json()["current_version"] == 2
    by_body = await registry.patch(f"/sessions/{sid}", json={"capacity": 33, "version": 1})
    assert by_body.status_code == 412
    stale_publish = await registry.post(f"/sessions/{sid}/publish", headers={"If-Match": "1"})
    assert stale_publish.status_code == 412
    assert (await registry.get(f"/sessions/{sid}")).json()["capacity"] == 31


async def test_an_update_without_a_version_is_refused(registry: Any, new_session: Any) -> None:
    sid = (await new_session())["id"]
    response = await registry.patch(f"/sessions/{sid}", json={"capacity": 31})
    assert response.status_code == 428


async def test_an_unknown_session_is_a_404(registry: Any) -> None:
    response = await registry.get("/sessions/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_retried_create_with_the_same_idempotency_key_creates_one_session(
    registry: Any, new_organizer: Any, session_body: Any, year: int
) -> None:
    body = session_body((await new_organizer())["id"], year)
    headers = {"Idempotency-Key": f"create-{year}-{body['organizer_id']}"}
    first = await registry.post("/sessions", json=body, headers=headers)
    again = await registry.post("/sessions", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    listed = await registry.get("/sessions", params={"organizer_id": body["organizer_id"]})
    assert len(listed.json()["items"]) == 1


async def test_two_operators_changing_the_same_version_at_once_one_wins(
    registry: Any, new_session: Any
) -> None:
    sid = (await new_session())["id"]
    results = await asyncio.gather(
        *(
            registry.patch(f"/sessions/{sid}", json={"capacity": c}, headers={"If-Match": "1"})
            for c in (40, 50, 60, 70)
        )
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 412, 412, 412]
    [winner] = [r.json() for r in results if r.status_code == 200]
    assert (await registry.get(f"/sessions/{sid}")).json()["capacity"] == winner["capacity"]


async def test_the_catalogue_filters_by_venue_country(registry: Any, new_session: Any) -> None:
    abroad = await new_session(venue_country="GH", venue_city="Accra")
    await registry.post(f"/sessions/{abroad['id']}/publish")
    found = await registry.get(
        "/catalogue", params={"country": "gh", "organizer_id": abroad["organizer_id"]}
    )
    assert found.status_code == 200, found.text
    assert [e["id"] for e in found.json()["items"]] == [abroad["id"]]


async def test_an_organizer_name_cannot_be_erased(registry: Any, new_organizer: Any) -> None:
    organizer = await new_organizer()
    response = await registry.patch(
        f"/organizers/{organizer['id']}", json={"name": None, "contact": None}
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == organizer["name"]
    assert response.json()["contact"] is None
