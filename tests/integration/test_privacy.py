"""Personal data on the whole platform: a canary trainee leaves no trace outside the
enrollment database, and erasing a trainee leaves every report as it was."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from tpp_plumbing.db import asyncpg_dsn
from tpp_plumbing.testing import fresh_year
from tpp_reporting.events import KNOWN_TYPES

pytestmark = pytest.mark.integration

BREAKDOWNS = ("country", "region", "field", "organizer", "profession", "gender")


def ok(response: Any, *codes: int) -> Any:
    assert response.status_code in (codes or (200, 201)), response.text
    return response.json()


@dataclass
class Driver:
    """Drives the platform over HTTP like operators do; every request asks to be traced."""

    platform: Any
    traced: bool = False

    def headers(self) -> dict[str, str]:
        if not self.traced:
            return {}
        trace_id, parent = random.getrandbits(128) | 1, random.getrandbits(64) | 1
        return {"traceparent": f"00-{trace_id:032x}-{parent:016x}-01"}

    async def post(self, service: str, path: str, body: Any = None, **kw: Any) -> Any:
        http = getattr(self.platform, service).http
        return await http.post(path, json=body, headers=self.headers(), **kw)

    async def get(self, service: str, path: str, **kw: Any) -> Any:
        http = getattr(self.platform, service).http
        return await http.get(path, headers=self.headers(), **kw)

    async def session(self, organizer_id: str, year: int, capacity: int, title: str) -> str:
        body = {
            "organizer_id": organizer_id,
            "title": title,
            "field": "information_technology",
            "year": year,
            "start_date": f"{year}-04-06",
            "end_date": f"{year}-04-24",
            "venue_city": "Chengdu",
            "venue_country": "CN",
            "capacity": capacity,
            "languages": ["en"],
        }
        session_id = str(ok(await self.post("registry", "/sessions", body))["id"])
        ok(await self.post("registry", f"/sessions/{session_id}/publish"))
        await self.seen(session_id, "published")
        return session_id

    async def seen(self, session_id: str, status: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while loop.time() < deadline:
            view = await self.get("enrollment", f"/sessions/{session_id}")
            if view.status_code == 200 and view.json()["status"] == status:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"enrollment never saw session {session_id} {status}")

    async def organizer(self) -> str:
        body = {"name": f"Privacy Institute {uuid.uuid4().hex[:6]}", "kind": "university"}
        return str(ok(await self.post("registry", "/organizers", body | {"country": "CN"}))["id"])

    async def trainee(self, **body: Any) -> dict[str, Any]:
        defaults = {
            "full_name": "Plain Trainee",
            "country": "NG",
            "gender": "male",
            "profession": "expert",
            "passport_number": f"A{uuid.uuid4().hex[:10].upper()}",
        }
        result: dict[str, Any] = ok(await self.post("enrollment", "/trainees", defaults | body))
        return result

    async def enroll(self, session_id: str, trainee_id: str) -> dict[str, Any]:
        path = f"/sessions/{session_id}/enrollments"
        result: dict[str, Any] = ok(await self.post("enrollment", path, {"trainee_id": trainee_id}))
        return result

    async def step(self, enrollment_id: str, action: str, body: Any = None) -> dict[str, Any]:
        result: dict[str, Any] = ok(
            await self.post("enrollment", f"/enrollments/{enrollment_id}/{action}", body)
        )
        return result


async def reporting_db(platform: Any, sql: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(asyncpg_dsn(platform.urls["reporting"]))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def applied(platform: Any, event_ids: list[uuid.UUID]) -> bool:
    rows = await reporting_db(
        platform,
        "SELECT count(*) FROM inbox_message WHERE event_id = ANY($1::uuid[])",
        event_ids,
    )
    return bool(rows[0][0] == len(event_ids))


async def outbox_ids(platform: Any, since: int = 0) -> tuple[int, list[uuid.UUID]]:
    """The enrollment service's outbox events after row ``since`` that reporting projects
    (and the last row id)."""
    conn = await asyncpg.connect(asyncpg_dsn(platform.urls["enrollment"]))
    try:
        rows = await conn.fetch(
            "SELECT id, event_id FROM outbox_message WHERE id > $1 AND event_type = ANY($2)"
            " ORDER BY id",
            since,
            list(KNOWN_TYPES),
        )
    finally:
        await conn.close()
    return (rows[-1]["id"] if rows else since), [r["event_id"] for r in rows]


def without_volatile(value: Any) -> Any:
    """A report without its freshness and what depends on today's date."""
    if isinstance(value, dict):
        return {
            k: without_volatile(v)
            for k, v in value.items()
            if k not in {"freshness", "share_of_time_elapsed", "years_left", "yearly_pace_needed"}
        }
    if isinstance(value, list):
        return [without_volatile(v) for v in value]
    return value


async def reports(platform: Any, year: int, commitment_id: str, eventually: Any) -> dict[str, Any]:
    """Every report about ``year``, each computed after everything applied so far."""
    http = platform.reporting.http
    now = ok(await http.get("/reports/freshness"))["events_applied"]
    paths = [
        f"/reports/years/{year}",
        f"/reports/years?from={year - 1}&to={year + 1}",
        f"/reports/sessions?year={year}",
        f"/reports/years/{year}/follow-ups",
        f"/reports/annual-review/{year}",
        f"/commitments/{commitment_id}",
        *(f"/reports/years/{year}/breakdown/{by}" for by in BREAKDOWNS),
    ]
    out: dict[str, Any] = {}
    for path in paths:

        async def current(path: str = path) -> Any:
            body = ok(await http.get(path))
            return body if body["freshness"]["events_applied"] >= now else None

        out[path] = without_volatile(await eventually(current, what=f"{path} recomputed"))
    # Each session's own report too.
    for item in out[f"/reports/sessions?year={year}"]["rows"]:
        sid = item["session_id"]

        async def one(sid: str = sid) -> Any:
            body = ok(await http.get(f"/reports/sessions/{sid}"))
            return body if body["freshness"]["events_applied"] >= now else None

        out[f"/reports/sessions/{sid}"] = without_volatile(await eventually(one))
    return out


async def test_erasure_leaves_every_report_as_it_was(platform: Any, eventually: Any) -> None:
    drive = Driver(platform)
    year = fresh_year()
    ok(await platform.registry.http.put(f"/plans/{year}", json={"planned_sessions": 3}))
    organizer = await drive.organizer()
    first = await drive.session(organizer, year, 5, "Cloud operations")
    second = await drive.session(organizer, year, 5, "Data centres")
    # The trainee to erase takes part in both sessions of the year (one person, counted
    # once), completes one, evaluates it and is followed up.
    person = await drive.trainee(full_name="Erased Later", country="KE", gender="female")
    others = [await drive.trainee(country=c) for c in ("KE", "UG", "VN")]
    mine = [await drive.enroll(s, person["id"]) for s in (first, second)]
    for other in others:
        await drive.enroll(first, other["id"])
    await drive.enroll(second, others[0]["id"])
    for step in ("close-enrollment", "start"):
        ok(await drive.post("registry", f"/sessions/{first}/{step}"))
    await drive.seen(first, "in_progress")
    await drive.step(mine[0]["id"], "check-in")
    await drive.step(mine[0]["id"], "complete", {"completed_on": f"{year}-04-24"})
    await drive.step(mine[0]["id"], "evaluation", {"score": 4, "comment": "Useful"})
    await drive.step(
        mine[0]["id"],
        "follow-ups",
        {"followed_up_on": f"{year}-08-01", "channel": "email", "outcome": "technology_adopted"},
    )
    await drive.step(mine[1]["id"], "withdraw", {"reason": "schedule"})
    commitment = ok(
        await platform.reporting.http.post(
            "/commitments",
            json={
                "name": f"Privacy {year}",
                "metric": "trainees_enrolled",
                "target": 10,
                "start_year": year,
                "end_year": year,
            },
        )
    )
    last, events = await outbox_ids(platform)
    await eventually(lambda: applied(platform, events), within=60, what="reporting applies all")
    before = await reports(platform, year, commitment["commitment_id"], eventually)
    assert before[f"/reports/years/{year}"]["trainees_enrolled"] == 4  # people, not enrollments

    erased = ok(await drive.post("enrollment", f"/trainees/{person['id']}/erasure"))
    assert erased["erased_at"] is not None
    _, erasure = await outbox_ids(platform, last)
    assert len(erasure) == 1
    await eventually(lambda: applied(platform, erasure), within=30, what="reporting applies it")
    linked = await reporting_db(
        platform,
        "SELECT count(*) FROM enrollment_fact WHERE trainee_id = $1",
        uuid.UUID(person["id"]),
    )
    assert linked[0][0] == 0  # reporting no longer links the enrollments to the person's id
    after = await reports(platform, year, commitment["commitment_id"], eventually)

    assert after == before
