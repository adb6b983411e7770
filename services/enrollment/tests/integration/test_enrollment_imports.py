"""Bulk nominations by CSV on the real PostgreSQL: row errors, idempotent re-upload, progress."""

from __future__ import annotations

import csv
import hashlib
import io
import time
import uuid
from typing import Any

import asyncpg
import pytest
from tpp_plumbing.db.engine import asyncpg_dsn

from .enrollment_support import App, enrollment_app

pytestmark = pytest.mark.integration

HEADER = [
    "full_name",
    "country",
    "gender",
    "profession",
    "organization",
    "email",
    "passport_number",
    "birth_date",
    "session_id",
]


def nominations(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HEADER)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def nominee(session_id: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    row = {
        "full_name": "Nguyen Van An",
        "country": "VN",
        "gender": "male",
        "profession": "expert",
        "organization": "Vietnam Academy of Science",
        "email": "an@example.org",
        "passport_number": f"V{uuid.uuid4().hex[:10].upper()}",
        "birth_date": "1979-01-02",
        "session_id": str(session_id),
    }
    return row | overrides


async def upload(app: App, content: bytes, eventually: Any) -> tuple[int, dict[str, Any]]:
    response = await app.http.post(
        "/imports", files={"file": ("nominations.csv", content, "text/csv")}
    )
    assert response.status_code in {200, 202}, response.text

    async def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = (await app.http.get(f"/imports/{response.json()['id']}")).json()
        return job if job["status"] in {"done", "failed"} else None

    return response.status_code, await eventually(finished, within=60, what="import finished")


async def test_valid_rows_are_enrolled_invalid_ones_reported_and_a_reupload_changes_nothing(
    databases: Any, eventually: Any
) -> None:
    async with enrollment_app(databases, "_imports") as app:
        session_id = await app.open_session(capacity=2)
        closed = await app.open_session(capacity=5)
        await app.fetch("UPDATE session_view SET status = 'draft' WHERE session_id = $1", closed)
        existing = nominee(session_id, passport_number="V0000000042")
        rows = [
            nominee(session_id),
            existing,
            nominee(session_id),
            nominee(session_id, country="XX"),  # row 5
            nominee(session_id, email="nope"),  # row 6
            nominee(session_id) | {"session_id": "not-a-uuid"},  # row 7
            existing,  # row 8: the same person again
            nominee(closed),  # row 9
            nominee(uuid.uuid4()),  # row 10
        ]
        content = nominations(rows)
        status, job = await upload(app, content, eventually)
        assert status == 202
        assert job["status"] == "done"
        assert (job["total"], job["processed"]) == (9, 9)
        assert (job["succeeded"], job["failed"]) == (3, 6)
        reasons = {e["row"]: e["reason"] for e in job["errors"]}
        assert set(reasons) == {5, 6, 7, 8, 9, 10}
        assert "country" in reasons[5]
        assert "email" in reasons[6]
        assert "session_id" in reasons[7]
        assert "row 3" in reasons[8]
        assert "draft" in reasons[9]
        enrolled = (await app.http.get(f"/sessions/{session_id}/enrollments")).json()
        assert [e["status"] for e in enrolled] == ["accepted", "accepted", "waitlisted"]

        again, second = await upload(app, content, eventually)
        assert again == 200
        assert second["id"] == job["id"]
        assert len((await app.http.get(f"/sessions/{session_id}/enrollments")).json()) == 3
        [count] = await app.fetch("SELECT count(*) AS n FROM trainee")
        assert count["n"] == 3  # rows refused register nobody


async def test_a_large_file_reports_progress_and_is_processed_in_batches(
    databases: Any, eventually: Any
) -> None:
    async with enrollment_app(databases, "_bulk") as app:
        sessions = [await app.open_session(capacity=1000) for _ in range(5)]
        rows = [nominee(sessions[i % 5], full_name=f"Nominee {i}") for i in range(20_000)]
        content = nominations(rows)
        started = time.perf_counter()
        response = await app.http.post("/imports", files={"file": ("big.csv", content, "text/csv")})
        assert response.status_code == 202
        job_id = response.json()["id"]
        seen_progress: set[int] = set()

        async def finished() -> dict[str, Any] | None:
            job: dict[str, Any] = (await app.http.get(f"/imports/{job_id}")).json()
            seen_progress.add(job["processed"])
            return job if job["status"] == "done" else None

        job = await eventually(finished, within=120, what="big import finished")
        elapsed = time.perf_counter() - started
        print(
            f"\nbulk import: {len(rows)} rows in {elapsed:.2f}s = {len(rows) / elapsed:.0f} rows/s"
        )
        assert (job["processed"], job["succeeded"], job["failed"]) == (20_000, 20_000, 0)
        assert len(seen_progress) > 1  # progress was visible on the way
        [row] = await app.fetch(
            "SELECT count(*) FILTER (WHERE status = 'accepted') AS a,"
            " count(*) FILTER (WHERE status = 'waitlisted') AS w FROM enrollment"
        )
        assert (row["a"], row["w"]) == (5000, 15_000)
        [events] = await app.fetch("SELECT count(*) AS n FROM outbox_message")
        assert events["n"] == 40_000  # one registration and one enrollment event per row
        # Chunks overlap, yet each session's waitlist is in the file's order, across chunks.
        waitlist = await app.fetch(
            "SELECT t.full_name FROM enrollment e JOIN trainee t ON t.id = e.trainee_id"
            " WHERE e.session_id = $1 AND e.status = 'waitlisted' ORDER BY e.waitlist_seq",
            sessions[0],
        )
        expected = [f"Nominee {i}" for i in range(0, 20_000, 5)][1000:]
        assert [r["full_name"] for r in waitlist] == expected


async def test_an_import_abandoned_mid_file_is_taken_over_where_it_stopped(
    databases: Any, eventually: Any
) -> None:
    async with enrollment_app(databases, "_abandoned") as app:
        session_id = await app.open_session(capacity=10)
        rows = [nominee(session_id) for _ in range(5)]
        content = nominations(rows)
        # The job of a process killed an hour ago after committing its first 2 rows (made
        # here without them, so that what the new run enrolls shows where it started).
        job_id = uuid.uuid4()
        await app.fetch(
            "INSERT INTO import_job (id, sha256, filename, status, total, processed, succeeded,"
            " runner, progressed_at) VALUES ($1, $2, 'n.csv', 'running', 5, 2, 2, $3,"
            " now() - interval '1 hour')",
            job_id,
            hashlib.sha256(content).hexdigest(),
            uuid.uuid4(),
        )
        status, job = await upload(app, content, eventually)
        assert (status, job["id"]) == (202, str(job_id))
        assert (job["status"], job["processed"], job["succeeded"], job["failed"]) == (
            "done",
            5,
            5,
            0,
        )
        enrolled = (await app.http.get(f"/sessions/{session_id}/enrollments")).json()
        assert len(enrolled) == 3  # rows 4 to 6: the first two were the dead run's

        # A job whose chunks are still committing (another worker) is left to its run.
        moving = nominations([nominee(session_id)])
        await app.fetch(
            "INSERT INTO import_job (id, sha256, status, total, runner)"
            " VALUES ($1, $2, 'running', 1, $3)",
            uuid.uuid4(),
            hashlib.sha256(moving).hexdigest(),
            uuid.uuid4(),
        )
        response = await app.http.post(
            "/imports", files={"file": ("moving.csv", moving, "text/csv")}
        )
        assert response.status_code == 200, response.text
        assert (response.json()["status"], response.json()["processed"]) == ("running", 0)


async def test_an_import_that_failed_is_resumed_by_uploading_the_file_again(
    databases: Any, eventually: Any
) -> None:
    async with enrollment_app(databases, "_failed") as app:
        session_id = await app.open_session(capacity=10)
        content = nominations([nominee(session_id) for _ in range(5)])
        # The job of a run that failed (the database went away) after committing 2 rows
        # (made here without them, so that what the new run enrolls shows where it started).
        job_id = uuid.uuid4()
        await app.fetch(
            "INSERT INTO import_job (id, sha256, filename, status, total, processed, succeeded,"
            " runner, error, finished_at) VALUES ($1, $2, 'n.csv', 'failed', 5, 2, 2, $3,"
            " 'ConnectionDoesNotExistError: connection was closed', now())",
            job_id,
            hashlib.sha256(content).hexdigest(),
            uuid.uuid4(),
        )
        status, job = await upload(app, content, eventually)
        assert (status, job["id"]) == (202, str(job_id))
        assert (job["status"], job["processed"], job["succeeded"], job["error"]) == (
            "done",
            5,
            5,
            None,
        )
        enrolled = (await app.http.get(f"/sessions/{session_id}/enrollments")).json()
        assert len(enrolled) == 3  # rows 4 to 6
        # Done now: uploading it again changes nothing.
        status, again = await upload(app, content, eventually)
        assert (status, again["status"], again["processed"]) == (200, "done", 5)
        assert len((await app.http.get(f"/sessions/{session_id}/enrollments")).json()) == 3


async def test_a_run_whose_job_was_taken_over_stops_without_committing_another_chunk(
    databases: Any, eventually: Any
) -> None:
    async with enrollment_app(databases, "_taken_over") as app:
        sessions = [await app.open_session(capacity=5000) for _ in range(2)]
        content = nominations([nominee(sessions[i % 2]) for i in range(10_000)])
        response = await app.http.post("/imports", files={"file": ("n.csv", content, "text/csv")})
        assert response.status_code == 202, response.text
        job_id = uuid.UUID(response.json()["id"])

        async def first_chunk() -> int | None:
            [job] = await app.fetch("SELECT processed FROM import_job WHERE id = $1", job_id)
            return int(job["processed"]) or None

        await eventually(first_chunk, within=60, what="a first chunk committed")
        # Another run takes the job over (as after this one seemed abandoned).
        await app.fetch("UPDATE import_job SET runner = $2 WHERE id = $1", job_id, uuid.uuid4())
        await app.app.state.services.imports.wait()
        [job] = await app.fetch("SELECT status, processed FROM import_job WHERE id = $1", job_id)
        assert job["status"] == "running"  # left to the run that holds it
        assert job["processed"] < 10_000
        [enrolled] = await app.fetch("SELECT count(*) AS n FROM enrollment")
        assert enrolled["n"] == job["processed"]  # no chunk committed after the takeover


async def test_people_registered_before_are_nominated_again_not_registered_twice(
    databases: Any, eventually: Any
) -> None:
    async with enrollment_app(databases, "_known_people") as app:
        first, second = await app.open_session(capacity=5), await app.open_session(capacity=5)
        known = nominee(first, passport_number="K1234567")
        _, job = await upload(app, nominations([known, nominee(first)]), eventually)
        assert (job["succeeded"], job["failed"]) == (2, 0)
        # A later file: the same person (passport and country) for another session, and a
        # new one; the known person keeps their trainee id, and is not registered again.
        again = known | {"session_id": str(second), "full_name": "N. V. An"}
        _, job = await upload(app, nominations([again, nominee(second)]), eventually)
        assert (job["succeeded"], job["failed"]) == (2, 0)
        [people] = await app.fetch("SELECT count(*) AS n FROM trainee")
        assert people["n"] == 3
        rows = await app.fetch(
            "SELECT array_agg(session_id ORDER BY session_id = $1) AS sessions FROM enrollment"
            " GROUP BY trainee_id HAVING count(*) > 1",
            second,
        )
        assert [r["sessions"] for r in rows] == [[first, second]]  # one person, both sessions
        [registered] = await app.fetch(
            "SELECT count(*) AS n FROM outbox_message"
            " WHERE event_type = 'tpp.enrollment.trainee.registered.v1'"
        )
        assert registered["n"] == 3
        # Nominated again where they already are: the row is refused, saying how they are.
        _, job = await upload(app, nominations([known | {"full_name": "An N. V."}]), eventually)
        assert (job["succeeded"], job["failed"]) == (0, 1)
        assert job["errors"] == [
            {"row": 2, "reason": "already has an enrollment in this session (accepted)"}
        ]


async def test_rows_for_a_session_closed_while_the_chunk_waited_change_nothing(
    databases: Any, eventually: Any
) -> None:
    """A chunk registers its people before it locks its sessions; a session that stops
    taking nominations in between has its rows refused, and their people unregistered."""
    async with enrollment_app(databases, "_closed_meanwhile") as app:
        closing, staying = await app.open_session(capacity=10), await app.open_session(capacity=10)
        conn = await asyncpg.connect(asyncpg_dsn(app.url))
        try:
            holder = conn.transaction()
            await holder.start()
            await conn.execute(
                "SELECT 1 FROM session_view WHERE session_id = $1 FOR UPDATE", closing
            )
            rows = [nominee(closing), nominee(closing), nominee(staying)]
            response = await app.http.post(
                "/imports", files={"file": ("n.csv", nominations(rows), "text/csv")}
            )
            assert response.status_code == 202, response.text

            async def waiting_for_the_lock() -> bool:
                # From another connection: a transaction sees one snapshot of the statistics.
                [waiting] = await app.fetch(
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE 'WITH locked AS%'"
                )
                return bool(waiting["n"])

            await eventually(waiting_for_the_lock, within=30, what="the chunk waits")
            await conn.execute(
                "UPDATE session_view SET status = 'enrollment_closed' WHERE session_id = $1",
                closing,
            )
            await holder.commit()
        finally:
            await conn.close()

        async def finished() -> dict[str, Any] | None:
            job: dict[str, Any] = (await app.http.get(f"/imports/{response.json()['id']}")).json()
            return job if job["status"] != "running" else None

        job = await eventually(finished, within=60, what="import finished")
        assert (job["status"], job["succeeded"], job["failed"]) == ("done", 1, 2)
        assert [e["row"] for e in job["errors"]] == [2, 3]
        assert all("closed" in e["reason"] for e in job["errors"]), job["errors"]
        # Only the person of the row that was enrolled is registered, with one event.
        [people] = await app.fetch("SELECT count(*) AS n FROM trainee")
        events = await app.fetch("SELECT event_type FROM outbox_message ORDER BY id")
        assert people["n"] == 1
        assert sorted(e["event_type"] for e in events) == [
            "tpp.enrollment.enrollment.accepted.v1",
            "tpp.enrollment.trainee.registered.v1",
        ]


async def test_two_imports_into_the_same_sessions_keep_places_and_waitlists_exact(
    databases: Any, eventually: Any
) -> None:
    """Chunks of two jobs interleave on the same sessions: each chunk's counts (waitlist
    length, places by country) are the ones the other job's chunks left."""
    async with enrollment_app(databases, "_two_jobs") as app:
        plain = await app.open_session(capacity=10)
        limited = await app.open_session(capacity=30, country_limit=3)
        countries = ["VN", "KE", "NG", "PE", "LA", "EG", "BR", "ID", "MN", "TZ"]
        files = [
            nominations(
                [
                    nominee((plain, limited)[i % 2], country=countries[(i // 2) % 10])
                    for i in range(5000)
                ]
            )
            for _ in range(2)
        ]
        responses = [
            await app.http.post("/imports", files={"file": (f"{n}.csv", f, "text/csv")})
            for n, f in enumerate(files)
        ]
        assert [r.status_code for r in responses] == [202, 202]

        async def finished() -> list[dict[str, Any]] | None:
            jobs = [(await app.http.get(f"/imports/{r.json()['id']}")).json() for r in responses]
            return jobs if all(job["status"] != "running" for job in jobs) else None

        jobs = await eventually(finished, within=120, what="both imports finished")
        assert [(j["status"], j["succeeded"]) for j in jobs] == [("done", 5000)] * 2
        taken = await app.fetch(
            "SELECT session_id, country, count(*) AS n FROM enrollment"
            " WHERE status = 'accepted' GROUP BY session_id, country"
        )
        assert sum(r["n"] for r in taken if r["session_id"] == plain) == 10
        assert sum(r["n"] for r in taken if r["session_id"] == limited) == 30
        assert max(r["n"] for r in taken if r["session_id"] == limited) == 3
        # Each waitlisted event's position is its place in the session's waitlist.
        for session_id in (plain, limited):
            positions = await app.fetch(
                "WITH w AS (SELECT convert_from(payload, 'UTF8')::jsonb -> 'data' AS d"
                " FROM outbox_message"
                " WHERE event_type = 'tpp.enrollment.enrollment.waitlisted.v1')"
                " SELECT (w.d ->> 'position')::int AS p FROM w"
                " JOIN enrollment e ON e.id = (w.d ->> 'enrollment_id')::uuid"
                " WHERE e.session_id = $1 ORDER BY e.waitlist_seq",
                session_id,
            )
            waiting = 10_000 // 2 - (10 if session_id == plain else 30)
            assert [r["p"] for r in positions] == list(range(1, waiting + 1))


async def test_the_documented_example_file_imports_cleanly(databases: Any, eventually: Any) -> None:
    async with enrollment_app(databases, "_example") as app:
        session_id = await app.open_session(capacity=10)
        response = await app.http.get(
            "/imports/nominations/example.csv", params={"session_id": str(session_id)}
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        example = list(csv.DictReader(io.StringIO(response.text)))
        assert len(example) == 3
        assert {row["session_id"] for row in example} == {str(session_id)}
        status, job = await upload(app, response.content, eventually)
        assert (status, job["status"]) == (202, "done")
        assert (job["succeeded"], job["failed"], job["errors"]) == (3, 0, [])
        listed = (await app.http.get(f"/sessions/{session_id}/enrollments")).json()
        assert len(listed) == 3
        # The OpenAPI document names every column the file has, and says which are required.
        described = app.app.openapi()["paths"]["/imports"]["post"]["description"]
        for column in example[0]:
            assert f"| `{column}` |" in described
        assert "| `passport_number` | yes |" in described
        assert "| `email` | no |" in described


async def test_erasure_neutralizes_the_file_name_and_hash_of_each_job_that_held_the_trainee(
    databases: Any, eventually: Any
) -> None:
    async with enrollment_app(databases, "_import_erasure") as app:
        session_id = await app.open_session(capacity=10)
        closed = await app.open_session(capacity=5)
        await app.fetch("UPDATE session_view SET status = 'draft' WHERE session_id = $1", closed)
        erased = nominee(session_id, full_name="Ana Erasable", passport_number="E0000000777")
        files = {
            # The person's own nomination, named after them.
            "nominations-ana-erasable.csv": [erased, nominee(session_id)],
            # Named again, in a row refused (a draft session): the file still holds them.
            "second-batch.csv": [nominee(session_id), erased | {"session_id": str(closed)}],
            "unrelated.csv": [nominee(session_id), nominee(session_id)],
        }
        jobs: dict[str, tuple[str, dict[str, Any]]] = {}
        for name, rows in files.items():
            content = nominations(rows)
            response = await app.http.post("/imports", files={"file": (name, content, "text/csv")})
            assert response.status_code == 202, response.text

            async def finished(job_id: str = response.json()["id"]) -> dict[str, Any] | None:
                job: dict[str, Any] = (await app.http.get(f"/imports/{job_id}")).json()
                return job if job["status"] == "done" else None

            job = await eventually(finished, within=60, what=f"{name} imported")
            jobs[name] = (hashlib.sha256(content).hexdigest(), job)
        found = await app.http.post(
            "/trainees", json={k: v for k, v in erased.items() if k != "session_id"}
        )
        assert found.status_code == 200, found.text

        gone = await app.http.post(f"/trainees/{found.json()['id']}/erasure")

        assert gone.status_code == 200, gone.text
        stored = {
            r["id"]: r
            for r in await app.fetch(
                "SELECT id, filename, sha256, total, succeeded, failed FROM import_job"
            )
        }
        for name, (digest, job) in jobs.items():
            row = stored[uuid.UUID(job["id"])]
            shown = (await app.http.get(f"/imports/{job['id']}")).json()
            counts = (job["total"], job["succeeded"], job["failed"])
            assert (row["total"], row["succeeded"], row["failed"]) == counts
            assert (shown["total"], shown["succeeded"], shown["failed"]) == counts
            if name == "unrelated.csv":
                assert (row["filename"], row["sha256"], shown["filename"]) == (name, digest, name)
            else:
                assert (row["filename"], shown["filename"]) == (None, None), name
                assert digest not in row["sha256"], name
        assert (
            await app.fetch(
                "SELECT 1 FROM import_trainee WHERE trainee_id = $1", uuid.UUID(found.json()["id"])
            )
            == []
        )
        # The file itself is no longer recognized: uploading it again is a new job.
        content = nominations(files["nominations-ana-erasable.csv"])
        again = await app.http.post("/imports", files={"file": ("again.csv", content, "text/csv")})
        assert again.status_code == 202, again.text
        assert again.json()["id"] != jobs["nominations-ana-erasable.csv"][1]["id"]


async def test_one_passport_number_in_two_countries_is_two_people_within_one_file(
    databases: Any, eventually: Any
) -> None:
    """A person is a passport number and a country: two countries may issue the same number."""
    async with enrollment_app(databases, "_same_passport") as app:
        session_id = await app.open_session(capacity=5)
        number = f"P{uuid.uuid4().hex[:8].upper()}"
        rows = [
            nominee(session_id, passport_number=number, country="VN", full_name="Tran Thi Mai"),
            nominee(session_id, passport_number=number, country="KE", full_name="Wanjiru Kamau"),
        ]
        _, job = await upload(app, nominations(rows), eventually)
        assert (job["succeeded"], job["failed"], job["errors"]) == (2, 0, [])
        people = await app.fetch(
            "SELECT t.country, e.status FROM trainee t JOIN enrollment e ON e.trainee_id = t.id"
            " WHERE e.session_id = $1 ORDER BY t.country",
            session_id,
        )
        assert [(p["country"], p["status"]) for p in people] == [
            ("KE", "accepted"),
            ("VN", "accepted"),
        ]
        [registered] = await app.fetch(
            "SELECT count(*) AS n FROM outbox_message"
            " WHERE event_type = 'tpp.enrollment.trainee.registered.v1'"
        )
        assert registered["n"] == 2
