"""Organizers, plans, session lists and the public catalogue through the HTTP API."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

pytestmark = pytest.mark.integration


async def test_organizer_names_are_unique_whatever_their_case(
    registry: Any, new_organizer: Any, organizer_body: Any
) -> None:
    first = await new_organizer()
    clash = await registry.post("/organizers", json=organizer_body(name=first["name"].upper()))
    assert clash.status_code == 409
    assert clash.headers["content-type"] == "application/problem+json"
    assert clash.json()["field"] == "name"
    other = await new_organizer()
    renamed = await registry.patch(
        f"/organizers/{other['id']}", json={"name": first["name"].lower()}
    )
    assert renamed.status_code == 409
    assert renamed.headers["content-type"] == "application/problem+json"
    assert renamed.json()["field"] == "name"
    assert (await registry.get(f"/organizers/{other['id']}")).json()["name"] == other["name"]


async def test_an_organizer_is_updated_listed_and_read(registry: Any, new_organizer: Any) -> None:
    marker = uuid.uuid4().hex[:8]
    organizer = await new_organizer(kind="international_center", country="KE", province=None)
    updated = await registry.patch(
        f"/organizers/{organizer['id']}", json={"name": f"ICIPE {marker}", "contact": "x@icipe.org"}
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["kind"] == "international_center"
    got = (await registry.get(f"/organizers/{organizer['id']}")).json()
    assert got["name"] == f"ICIPE {marker}"
    assert got["contact"] == "x@icipe.org"
    listed = await registry.get("/organizers", params={"country": "KE", "limit": 200})
    assert organizer["id"] in [o["id"] for o in listed.json()["items"]]
    assert (await registry.get(f"/organizers/{uuid.uuid4()}")).status_code == 404


async def test_an_organizer_needs_a_real_country(registry: Any, organizer_body: Any) -> None:
    response = await registry.post("/organizers", json=organizer_body(country="ZZ"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "country"


async def test_a_plan_keeps_its_revisions(registry: Any, year: int) -> None:
    assert (await registry.get(f"/plans/{year}")).status_code == 404
    first = await registry.put(f"/plans/{year}", json={"planned_sessions": 50})
    assert first.status_code == 200, first.text
    assert first.json()["revision"] == 1
    body = {
        "planned_sessions": 55,
        "planned_overseas_sessions": 2,
        "budget": "12000000.00",
        "currency": "CNY",
    }
    second = await registry.put(f"/plans/{year}", json=body, headers={"If-Match": 'W/"1"'})
    assert second.json()["revision"] == 2
    unchanged = await registry.put(f"/plans/{year}", json=body)
    assert unchanged.json()["revision"] == 2
    stale = await registry.put(
        f"/plans/{year}", json={"planned_sessions": 60}, headers={"If-Match": "1"}
    )
    assert stale.status_code == 412
    current = await registry.get(f"/plans/{year}")
    assert current.json()["planned_sessions"] == 55
    assert current.headers["etag"] == 'W/"2"'
    revisions = (await registry.get(f"/plans/{year}/revisions")).json()
    assert [(r["revision"], r["planned_sessions"]) for r in revisions] == [(1, 50), (2, 55)]
    years = [p["year"] for p in (await registry.get("/plans")).json()]
    assert year in years


async def test_a_budget_needs_its_currency(registry: Any, year: int) -> None:
    response = await registry.put(f"/plans/{year}", json={"planned_sessions": 5, "budget": "10"})
    assert response.status_code == 422


async def test_sessions_page_through_filters_without_gaps_or_repeats(
    registry: Any, new_organizer: Any, new_session: Any, year: int
) -> None:
    organizer = (await new_organizer())["id"]
    created = [
        await new_session(organizer, start_date=f"{year}-0{m}-01", end_date=f"{year}-0{m}-09")
        for m in (3, 3, 4, 5, 6)
    ]
    abroad = await new_session(organizer, venue_country="GH")
    await registry.post(f"/sessions/{abroad['id']}/publish")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"year": year, "organizer_id": organizer, "limit": 2} | (
            {"cursor": cursor} if cursor else {}
        )
        page = (await registry.get("/sessions", params=params)).json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(s["id"] for s in [*created, abroad])
    assert len(seen) == len(set(seen))
    overseas = await registry.get("/sessions", params={"organizer_id": organizer, "overseas": True})
    assert [s["id"] for s in overseas.json()["items"]] == [abroad["id"]]
    published = await registry.get(
        "/sessions", params={"organizer_id": organizer, "status": "published"}
    )
    assert [s["id"] for s in published.json()["items"]] == [abroad["id"]]
    bad = await registry.get("/sessions", params={"cursor": "nonsense"})
    assert bad.status_code == 422


async def test_the_catalogue_shows_published_sessions_and_finds_them_by_words(
    registry: Any, new_organizer: Any, new_session: Any, year: int
) -> None:
    organizer = await new_organizer()
    irrigation = await new_session(
        organizer["id"],
        title=f"Water-saving irrigation {year}",
        description="Drip systems for arid farms.",
        field="agriculture_forestry",
    )
    draft = await new_session(organizer["id"], title=f"Irrigation draft {year}")
    await registry.post(f"/sessions/{irrigation['id']}/publish")
    found = await registry.get(
        "/catalogue", params={"q": "irrigated farm", "organizer_id": organizer["id"]}
    )
    assert found.status_code == 200, found.text
    [entry] = found.json()["items"]
    assert entry["id"] == irrigation["id"]
    assert entry["organizer_name"] == organizer["name"]
    everything = await registry.get("/catalogue", params={"organizer_id": organizer["id"]})
    assert draft["id"] not in [e["id"] for e in everything.json()["items"]]
    nothing = await registry.get(
        "/catalogue", params={"q": "astronomy", "organizer_id": organizer["id"]}
    )
    assert nothing.json()["items"] == []
