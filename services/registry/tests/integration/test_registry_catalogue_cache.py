"""The public catalogue's cached pages: ETag and 304, and invalidation by any writer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

pytestmark = pytest.mark.integration


async def _titles(registry: Any, **params: Any) -> list[str]:
    response = await registry.get("/catalogue", params=params)
    assert response.status_code == 200, response.text
    return [entry["title"] for entry in response.json()["items"]]


async def _eventually(check: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "the catalogue did not change in time"
        await asyncio.sleep(0.05)


async def test_a_catalogue_page_revalidates_with_its_etag(
    registry: Any, new_organizer: Any, new_session: Any
) -> None:
    organizer = await new_organizer()
    first = await new_session(organizer["id"], title="Seed banks and breeding")
    await registry.post(f"/sessions/{first['id']}/publish")
    params = {"organizer_id": organizer["id"]}
    page = await registry.get("/catalogue", params=params)
    etag = page.headers["etag"]
    assert etag.startswith('"')
    assert page.headers["cache-control"] == "public, no-cache"

    unchanged = await registry.get("/catalogue", params=params, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["etag"] == etag
    weak = await registry.get(
        "/catalogue", params=params, headers={"If-None-Match": f'"other", W/{etag}'}
    )
    assert weak.status_code == 304
    stale = await registry.get("/catalogue", params=params, headers={"If-None-Match": '"old"'})
    assert stale.status_code == 200
    assert stale.json() == page.json()

    second = await new_session(organizer["id"], title="Seed certification")
    await registry.post(f"/sessions/{second['id']}/publish")
    changed = await registry.get("/catalogue", params=params, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert sorted(e["title"] for e in changed.json()["items"]) == [
        "Seed banks and breeding",
        "Seed certification",
    ]


async def test_a_repeated_query_is_served_from_memory(
    registry: Any, registry_app: Any, new_organizer: Any, new_session: Any, eventually: Any
) -> None:
    organizer = await new_organizer()
    session = await new_session(organizer["id"])
    await registry.post(f"/sessions/{session['id']}/publish")
    cache = registry_app.state.services.catalogue

    # A page is kept only once the worker listens for changes (it starts listening on its
    # first catalogue query, and forgets its pages when it does), and the publish's own
    # NOTIFY may still be on its way: the same query asked twice is then answered from memory.
    async def repeated_from_memory() -> bool:
        first = await _titles(registry, organizer_id=organizer["id"])
        hits = cache.hits
        again = await _titles(registry, organizer_id=organizer["id"])
        return cache.hits == hits + 1 and again == first == [session["title"]]

    await eventually(repeated_from_memory, within=10, what="a repeated query served from memory")


async def test_changes_made_elsewhere_reach_the_cached_catalogue(
    registry: Any, registry_app: Any, engine: AsyncEngine, new_organizer: Any, new_session: Any
) -> None:
    """Another worker (here: plain SQL) changes the catalogue; the trigger's NOTIFY clears it."""
    organizer = await new_organizer()
    published = await new_session(organizer["id"], title="Telemedicine networks")
    draft = await new_session(organizer["id"], title="Telemedicine for islands")
    await registry.post(f"/sessions/{published['id']}/publish")
    params = {"organizer_id": organizer["id"]}
    cache = registry_app.state.services.catalogue

    async def cached() -> bool:
        hits = cache.hits
        assert await _titles(registry, **params) == ["Telemedicine networks"]
        return bool(cache.hits > hits)

    await _eventually(cached)  # once the worker listens, the page is kept

    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE training_session SET status = 'published' WHERE id = :id"),
            {"id": draft["id"]},
        )

    async def both_listed() -> bool:
        return len(await _titles(registry, **params)) == 2

    await _eventually(both_listed)

    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE organizer SET name = name || ' (renamed)' WHERE id = :id"),
            {"id": organizer["id"]},
        )

    async def renamed() -> bool:
        response = await registry.get("/catalogue", params=params)
        return all(e["organizer_name"].endswith("(renamed)") for e in response.json()["items"])

    await _eventually(renamed)


async def test_a_closed_session_leaves_the_catalogue_at_once(
    registry: Any, new_organizer: Any, new_session: Any
) -> None:
    organizer = await new_organizer()
    session = await new_session(organizer["id"])
    published = await registry.post(f"/sessions/{session['id']}/publish")
    params = {"organizer_id": organizer["id"]}
    assert len(await _titles(registry, **params)) == 1
    closed = await registry.post(
        f"/sessions/{session['id']}/close-enrollment",
        headers={"If-Match": published.headers["etag"]},
    )
    assert closed.status_code == 200, closed.text
    assert await _titles(registry, **params) == []
