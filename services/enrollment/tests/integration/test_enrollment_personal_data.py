"""Personal data at rest: encrypted columns, keyed-hash deduplication, key rotation, erasure,
and the migration of rows an older version stored in clear."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from tpp_enrollment.keys import key_status, rotate
from tpp_enrollment.personal import PersonalData, new_key
from tpp_plumbing.db.engine import asyncpg_dsn, create_engine
from tpp_testkit import auth_headers, service_client

from .enrollment_support import App, enrollment_app, register, trainee_body

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[4]
KEYS_ENV = "TPP_ENROLLMENT_PERSONAL_DATA_KEYS"
HASH_ENV = "TPP_ENROLLMENT_PASSPORT_HASH_KEY"


async def raw_row(app: App, trainee_id: str) -> dict[str, Any]:
    [row] = await app.fetch("SELECT * FROM trainee WHERE id = $1", uuid.UUID(trainee_id))
    return dict(row)


def stored_text(row: dict[str, Any]) -> str:
    """Everything stored in the row, bytes included, as text a plaintext would show in."""
    parts = []
    for value in row.values():
        if isinstance(value, bytes | bytearray | memoryview):
            parts.append(bytes(value).decode("latin-1"))
        else:
            parts.append(str(value))
    return "\n".join(parts)


async def test_passport_email_and_birth_date_are_stored_encrypted_and_matched_by_hash(
    databases: Any,
) -> None:
    async with enrollment_app(databases, "_sealed") as app:
        body = trainee_body(passport_number="ka7766554", birth_date="1979-12-31")
        created = await app.http.post("/trainees", json=body)
        assert created.status_code == 201, created.text
        trainee = created.json()
        assert trainee["passport_number"] == "KA7766554"

        row = await raw_row(app, trainee["id"])
        assert {"passport_number", "email", "birth_date"}.isdisjoint(row)  # no clear columns
        text = stored_text(row)
        for secret in ("KA7766554", "ka7766554", body["email"], "1979-12-31", "1979"):
            assert secret not in text
        assert len(row["passport_hash"]) == 32

        # Read back decrypted; the same passport + country (any case) is the same person.
        shown = (await app.http.get(f"/trainees/{trainee['id']}")).json()
        assert (shown["passport_number"], shown["email"], shown["birth_date"]) == (
            "KA7766554",
            body["email"],
            "1979-12-31",
        )
        again = await app.http.post("/trainees", json=body | {"passport_number": "KA7766554"})
        assert (again.status_code, again.json()["id"]) == (200, trainee["id"])
        assert again.json()["email"] == body["email"]
        elsewhere = await app.http.post("/trainees", json=body | {"country": "UG"})
        assert elsewhere.status_code == 201  # another country's passport: another person
        found = await app.http.get("/trainees", params={"name": body["full_name"], "country": "KE"})
        assert [t["passport_number"] for t in found.json()["items"]] == ["KA7766554"]


async def test_rotation_reencrypts_every_row_under_the_newest_key(databases: Any) -> None:
    async with enrollment_app(databases, "_rotate") as app:
        ids = [await register(app, full_name=f"Rotated {n}") for n in range(7)]
        settings = app.app.state.runtime.settings
        old_ring = settings.personal_data_keys.get_secret_value()
        old_hash = settings.passport_hash_key.get_secret_value()
        bodies = {t: (await app.http.get(f"/trainees/{t}")).json() for t in ids}
    engine = create_engine(app.url, pool_size=1)
    try:
        old_id = old_ring.split(":", 1)[0]
        assert {k for _, k, _ in await key_status(engine)} == {old_id}
        # A new key first in the ring, the old one kept; a new hash secret too.
        next_key, new_hash = new_key(), new_key()
        rotated = PersonalData.from_config(f"next:{next_key},{old_ring}", new_hash)
        done = await rotate(engine, rotated, batch=3)  # three batches
        assert (done.rows, done.resealed, done.rehashed) == (7, 7, 7)
        assert {k for _, k, _ in await key_status(engine)} == {"next"}
        again = await rotate(engine, rotated, batch=3)
        assert (again.rows, again.resealed, again.rehashed) == (7, 0, 0)
    finally:
        await engine.dispose()

    # The service restarted with the old key dropped reads and matches every trainee.
    async with enrollment_app(
        databases,
        url=app.url,
        personal_data_keys=f"next:{next_key}",
        passport_hash_key=new_hash,
    ) as restarted:
        for trainee_id, before in bodies.items():
            after = (await restarted.http.get(f"/trainees/{trainee_id}")).json()
            assert after == before
            body = {k: before[k] for k in trainee_body()}
            same = await restarted.http.post("/trainees", json=body)
            assert (same.status_code, same.json()["id"]) == (200, trainee_id)
    assert old_hash != new_hash


async def test_erasure_removes_personal_data_keeps_enrollments_and_frees_the_passport(
    databases: Any,
) -> None:
    async with enrollment_app(databases, "_erase") as app:
        http = app.http
        session_id = await app.open_session(capacity=5)
        body = trainee_body(full_name="Erasable Person", organization="Private Farm Ltd")
        trainee_id = (await http.post("/trainees", json=body)).json()["id"]
        enrollment = (
            await http.post(f"/sessions/{session_id}/enrollments", json={"trainee_id": trainee_id})
        ).json()
        await app.start_session(session_id)
        await http.post(f"/enrollments/{enrollment['id']}/check-in")
        evaluation = await http.post(
            f"/enrollments/{enrollment['id']}/evaluation",
            json={"score": 5, "comment": "Thanks, Erasable Person"},
        )
        assert evaluation.status_code == 201
        elsewhere = await app.open_session(capacity=5)
        withdrawn = await http.post(
            f"/sessions/{elsewhere}/enrollments", json={"trainee_id": trainee_id}
        )
        withdrawal = {"reason": "personal", "note": "Erasable Person is moving house"}
        left = await http.post(f"/enrollments/{withdrawn.json()['id']}/withdraw", json=withdrawal)
        assert (left.status_code, left.json()["note"]) == (200, withdrawal["note"])
        replayed = await http.post(
            "/trainees", json=trainee_body(), headers={"Idempotency-Key": f"k-{trainee_id}"}
        )
        assert replayed.status_code == 201
        stored_before = await app.fetch("SELECT count(*) FROM idempotency_key")
        outbox_before = await app.fetch("SELECT count(*) FROM outbox_message")

        # Operators only.
        organizer = auth_headers("organizer", uuid.uuid4())
        for headers, status in ((auth_headers("viewer"), 403), (organizer, 403), ({}, 401)):
            async with service_client(app.app, headers=headers) as other:
                refused = await other.post(f"/trainees/{trainee_id}/erasure")
                assert refused.status_code == status, refused.text
        erased = await http.post(f"/trainees/{trainee_id}/erasure")
        assert erased.status_code == 200, erased.text
        shown = erased.json()
        assert shown["erased_at"] is not None
        assert all(
            shown[k] is None
            for k in ("full_name", "organization", "email", "passport_number", "birth_date")
        )
        assert (shown["country"], shown["gender"], shown["profession"]) == (
            body["country"],
            body["gender"],
            body["profession"],
        )
        assert (await http.get(f"/trainees/{trainee_id}")).json() == shown

        # Nothing personal is left in the row, nor in the evaluation's comment, nor in the
        # withdrawal's note (its reason, a category, stays).
        row = await raw_row(app, trainee_id)
        assert row["erased_at"] is not None
        text = stored_text(row)
        assert "Erasable" not in text
        assert "Private Farm" not in text
        assert row["passport_hash"] is None
        assert row["passport_number_sealed"] is None
        [comment] = await app.fetch(
            "SELECT comment, score FROM evaluation WHERE enrollment_id = $1",
            uuid.UUID(enrollment["id"]),
        )
        assert (comment["comment"], comment["score"]) == (None, 5)
        decided = await app.fetch(
            "SELECT reason, note FROM enrollment WHERE trainee_id = $1 AND status = 'withdrawn'",
            uuid.UUID(trainee_id),
        )
        assert [tuple(r) for r in decided] == [("personal", None)]

        # One event says so (and erasing again publishes nothing more).
        events = await _new_outbox_rows(app, outbox_before[0][0])
        assert [e["event_type"] for e in events] == ["tpp.enrollment.trainee.erased.v1"]
        assert (await http.post(f"/trainees/{trainee_id}/erasure")).json() == shown
        assert len(await _new_outbox_rows(app, outbox_before[0][0])) == 1
        # The stored replay of a request was not about this trainee: kept.
        assert (await app.fetch("SELECT count(*) FROM idempotency_key"))[0][0] >= 1
        assert stored_before[0][0] >= 1

        # The enrollments stay; search finds no one; the passport is free again.
        history = (await http.get(f"/trainees/{trainee_id}/enrollments")).json()
        assert [(h["id"], h["status"]) for h in history] == [
            (enrollment["id"], "attended"),
            (withdrawn.json()["id"], "withdrawn"),
        ]
        found = (await http.get("/trainees", params={"name": "Erasable"})).json()["items"]
        assert found == []
        by_country = (await http.get("/trainees", params={"country": body["country"]})).json()
        assert trainee_id not in {t["id"] for t in by_country["items"]}
        anew = await http.post("/trainees", json=body)
        assert anew.status_code == 201
        assert anew.json()["id"] != trainee_id
        refused = await http.post(
            f"/sessions/{session_id}/enrollments", json={"trainee_id": trainee_id}
        )
        assert refused.status_code == 409
        assert refused.json()["field"] == "trainee_id"
        assert (await http.post(f"/trainees/{uuid.uuid4()}/erasure")).status_code == 404


async def _new_outbox_rows(app: App, before: int) -> list[Any]:
    rows = await app.fetch("SELECT * FROM outbox_message ORDER BY 1")
    return [dict(r) for r in rows][before:]


async def test_erasure_drops_stored_responses_that_show_the_trainee(databases: Any) -> None:
    async with enrollment_app(databases, "_erase_replay") as app:
        body = trainee_body(full_name="Replayed Person")
        first = await app.http.post("/trainees", json=body, headers={"Idempotency-Key": "r-1"})
        trainee_id = first.json()["id"]
        [stored] = await app.fetch("SELECT body FROM idempotency_key WHERE key = '/trainees r-1'")
        assert b"Replayed Person" in stored["body"]
        await app.http.post(f"/trainees/{trainee_id}/erasure")
        assert await app.fetch("SELECT body FROM idempotency_key WHERE key = '/trainees r-1'") == []


def _alembic(url: str, target: str) -> None:
    env = os.environ | {"TPP_ENROLLMENT_DATABASE_URL": url}
    subprocess.run(  # noqa: S603 - fixed command, our own config file
        [
            sys.executable,
            "-m",
            "alembic",
            "-c",
            "services/enrollment/alembic.ini",
            "upgrade",
            target,
        ],
        check=True,
        env=env,
        cwd=ROOT,
        capture_output=True,
    )


async def test_the_migration_encrypts_rows_stored_in_clear(databases: Any, run_id: str) -> None:
    name = f"enrollment_{run_id}_premigr"
    admin = await asyncpg.connect(databases.infra.admin_url)
    try:
        owner = make_url(databases.infra.service_urls["enrollment"]).username
        await admin.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
    finally:
        await admin.close()
    databases.created.append(name)
    url = make_url(databases.infra.service_urls["enrollment"]).set(database=name)
    url_text = url.render_as_string(hide_password=False)
    _alembic(url_text, "0003")  # the schema before personal data was encrypted
    conn = await asyncpg.connect(asyncpg_dsn(url_text))
    old_id = uuid.uuid4()
    try:
        await conn.execute(
            "INSERT INTO trainee (id, full_name, country, gender, profession, organization,"
            " email, passport_number, birth_date) VALUES ($1, 'Legacy Person', 'GH', 'male',"
            " 'expert', 'Accra Polytechnic', 'legacy@example.org', 'GH1234567', '1970-01-02')",
            old_id,
        )
    finally:
        await conn.close()
    _alembic(url_text, "head")

    async with enrollment_app(databases, url=url_text) as app:
        row = await raw_row(app, str(old_id))
        assert "GH1234567" not in stored_text(row)
        assert "legacy@" not in stored_text(row)
        shown = (await app.http.get(f"/trainees/{old_id}")).json()
        assert (shown["passport_number"], shown["email"], shown["birth_date"]) == (
            "GH1234567",
            "legacy@example.org",
            "1970-01-02",
        )
        same = trainee_body(country="GH", passport_number="gh1234567")
        matched = await app.http.post("/trainees", json=same)
        assert (matched.status_code, matched.json()["id"]) == (200, str(old_id))
