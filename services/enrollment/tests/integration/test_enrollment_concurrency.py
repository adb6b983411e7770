"""Capacity under concurrency, on the real PostgreSQL: never exceeded, waitlist in order."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from tpp_contracts.envelope import decode
from tpp_enrollment.store import enrollments as store
from tpp_plumbing.db.uow import UnitOfWork
from tpp_plumbing.web import idempotency

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
        # In order: each withdrawal (under the session's lock) promoted the first in line then,
        # and the rest of the line kept its order.
        accepted_events = await app.fetch(
            "SELECT payload FROM outbox_message WHERE event_type = $1 ORDER BY id",
            "tpp.enrollment.enrollment.accepted.v1",
        )
        events = [decode(bytes(r["payload"])).envelope.data for r in accepted_events]
        promotions = [e["enrollment_id"] for e in events if e["promoted_from_waitlist"]]
        assert promotions == first_five
        still_waiting = (
            await app.http.get(
                f"/sessions/{session_id}/enrollments", params={"status": "waitlisted", "limit": 500}
            )
        ).json()
        assert [e["id"] for e in still_waiting] == [e["id"] for e in waitlist[5:]]
        assert [e["waitlist_position"] for e in still_waiting] == list(range(1, 166))
        view = (await app.http.get(f"/sessions/{session_id}")).json()
        assert view["accepted"] == 30
        rows = await app.fetch(
            "SELECT event_type, count(*) AS n FROM outbox_message"
            " WHERE event_type LIKE 'tpp.enrollment.enrollment.%' GROUP BY event_type"
        )
        counts = {r["event_type"].split(".")[-2]: r["n"] for r in rows}
        assert counts == {"accepted": 35, "waitlisted": 170, "withdrawn": 5}


@pytest.mark.parametrize("limit", [None, 1], ids=["session-full", "country-full"])
async def test_an_enrollment_read_before_another_commits_is_decided_again_under_the_lock(
    databases: Any, monkeypatch: pytest.MonkeyPatch, limit: int | None
) -> None:
    """The optimistic path: the last place (of the session, or of the country) is taken
    between the command's read and its write; the write changes nothing and the command is
    decided again under the session's lock: waitlisted, first in line."""
    async with enrollment_app(databases, f"_optimistic{limit or 0}") as app:
        session_id = await app.open_session(capacity=1 if limit is None else 5, country_limit=limit)
        first, late = await register(app, country="VN"), await register(app, country="VN")
        read = store.read_for_enroll
        moved: list[asyncpg.Record] = []

        async def read_then_another_takes_the_place(
            db: Any, session: uuid.UUID, trainee: uuid.UUID
        ) -> asyncpg.Record | None:
            view = await read(db, session, trainee)
            if str(trainee) == late and not moved:
                assert view is not None
                moved.append(view)  # what the late command saw: a free place
                taken = await app.http.post(
                    f"/sessions/{session_id}/enrollments", json={"trainee_id": first}
                )
                assert taken.json()["status"] == "accepted"
            return view

        monkeypatch.setattr(store, "read_for_enroll", read_then_another_takes_the_place)
        response = await app.http.post(
            f"/sessions/{session_id}/enrollments", json={"trainee_id": late}
        )
        assert response.status_code == 201, response.text
        assert moved[0]["accepted"] == 0
        assert (response.json()["status"], response.json()["waitlist_position"]) == (
            "waitlisted",
            1,
        )
        rows = await app.fetch(
            "SELECT e.trainee_id::text AS trainee, e.status, v.accepted FROM enrollment e"
            " JOIN session_view v USING (session_id) WHERE e.session_id = $1",
            session_id,
        )
        assert sorted((r["trainee"], r["status"], r["accepted"]) for r in rows) == sorted(
            [(first, "accepted", 1), (late, "waitlisted", 1)]
        )
        events = await app.fetch(
            "SELECT event_type FROM outbox_message WHERE key = $1 ORDER BY id", str(session_id)
        )
        assert [e["event_type"].split(".")[-2] for e in events] == ["accepted", "waitlisted"]


async def test_an_enrollment_written_in_one_statement_marks_its_idempotency_key_with_it(
    databases: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retry of an enrollment whose answer was lost must never enroll again: the statement
    that writes it also marks its Idempotency-Key committed (as Outbox.add does)."""
    async with enrollment_app(databases, "_optimistic_key") as app:
        session_id = await app.open_session(capacity=3)
        trainee = await register(app)
        key = str(uuid.uuid4())
        write = UnitOfWork.commit
        seen: list[Any] = []

        async def write_then_look(*args: Any) -> Any:
            written = await write(*args)
            rows = await app.fetch(
                "SELECT status FROM idempotency_key WHERE key LIKE '%' || $1", key
            )
            seen.extend(r["status"] for r in rows)
            return written

        monkeypatch.setattr(UnitOfWork, "commit", write_then_look)
        response = await app.http.post(
            f"/sessions/{session_id}/enrollments",
            json={"trainee_id": trainee},
            headers={"Idempotency-Key": key},
        )
        assert response.status_code == 201, response.text
        assert seen == [idempotency.COMMITTED]  # before the answer is stored
        again = await app.http.post(
            f"/sessions/{session_id}/enrollments",
            json={"trainee_id": trainee},
            headers={"Idempotency-Key": key},
        )
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == response.json()["id"]


async def test_with_no_race_a_trainee_over_their_countrys_limit_is_waitlisted_by_the_fast_path(
    databases: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No other command moves the places: each enrollment is decided by the optimistic path
    alone, which counts the places the trainee's country holds as the locked path does."""
    async with enrollment_app(databases, "_country_fast") as app:
        session_id = await app.open_session(capacity=5, country_limit=2)
        kenyans = [await register(app, country="KE") for _ in range(3)]
        ghanaian = await register(app, country="GH")

        async def no_lock(*_: Any) -> None:
            raise AssertionError("decided under the lock: the optimistic path gave up")

        monkeypatch.setattr(store, "lock_for_enroll", no_lock)

        async def enroll(trainee_id: str) -> tuple[str, int | None]:
            response = await app.http.post(
                f"/sessions/{session_id}/enrollments", json={"trainee_id": trainee_id}
            )
            assert response.status_code == 201, response.text
            return response.json()["status"], response.json()["waitlist_position"]

        assert [await enroll(t) for t in kenyans] == [
            ("accepted", None),
            ("accepted", None),
            ("waitlisted", 1),  # Kenya holds its two places; three of five are free
        ]
        assert await enroll(ghanaian) == ("accepted", None)
        view = (await app.http.get(f"/sessions/{session_id}")).json()
        assert (view["capacity"], view["accepted"]) == (5, 3)
        events = await app.fetch(
            "SELECT event_type FROM outbox_message WHERE key = $1 ORDER BY id", str(session_id)
        )
        assert [e["event_type"].split(".")[-2] for e in events] == [
            "accepted",
            "accepted",
            "waitlisted",
            "accepted",
        ]


async def test_a_freed_place_goes_to_the_first_in_line_whose_country_is_under_its_limit(
    databases: Any,
) -> None:
    async with enrollment_app(databases, "_country_promotion") as app:
        session_id = await app.open_session(capacity=2, country_limit=1)
        kenyan, kenyan_too = await register(app, country="KE"), await register(app, country="KE")
        ghanaian, ghanaian_too = (
            await register(app, country="GH"),
            await register(app, country="GH"),
        )

        async def enroll(trainee_id: str) -> dict[str, Any]:
            response = await app.http.post(
                f"/sessions/{session_id}/enrollments", json={"trainee_id": trainee_id}
            )
            assert response.status_code == 201, response.text
            body: dict[str, Any] = response.json()
            return body

        first, waiting_ke, leaving, waiting_gh = [
            await enroll(t) for t in (kenyan, kenyan_too, ghanaian, ghanaian_too)
        ]
        assert [e["status"] for e in (first, waiting_ke, leaving, waiting_gh)] == [
            "accepted",
            "waitlisted",  # Kenya's one place is taken
            "accepted",
            "waitlisted",  # the session is full
        ]
        withdrawn = await app.http.post(f"/enrollments/{leaving['id']}/withdraw")
        assert withdrawn.json()["status"] == "withdrawn"

        async def status(enrollment: dict[str, Any]) -> str:
            response = await app.http.get(f"/enrollments/{enrollment['id']}")
            return str(response.json()["status"])

        # The Kenyan is first in line, but Kenya holds its place: the Ghanaian behind moves up.
        assert (await status(waiting_ke), await status(waiting_gh)) == ("waitlisted", "accepted")
        view = (await app.http.get(f"/sessions/{session_id}")).json()
        assert view["accepted"] == 2


async def test_leaving_the_waitlist_frees_no_place(databases: Any) -> None:
    async with enrollment_app(databases, "_waitlist_leaves") as app:
        session_id = await app.open_session(capacity=1)
        enrollments = []
        for _ in range(3):
            response = await app.http.post(
                f"/sessions/{session_id}/enrollments", json={"trainee_id": await register(app)}
            )
            enrollments.append(response.json())
        assert [e["status"] for e in enrollments] == ["accepted", "waitlisted", "waitlisted"]
        left = await app.http.post(f"/enrollments/{enrollments[1]['id']}/withdraw")
        assert left.json()["status"] == "withdrawn"
        listed = (await app.http.get(f"/sessions/{session_id}/enrollments")).json()
        assert [(e["status"], e["waitlist_position"]) for e in listed] == [
            ("accepted", None),
            ("withdrawn", None),
            ("waitlisted", 1),  # moved up the line, not into a place
        ]
        view = (await app.http.get(f"/sessions/{session_id}")).json()
        assert (view["capacity"], view["accepted"]) == (1, 1)
