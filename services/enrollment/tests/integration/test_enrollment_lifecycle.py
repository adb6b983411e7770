"""A trainee's way through the API: review, attendance, completion, evaluation, follow-up."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from .enrollment_support import enrollment_app, register

pytestmark = pytest.mark.integration


async def test_from_review_to_follow_up_with_refusals_in_the_wrong_order(databases: Any) -> None:
    async with enrollment_app(databases, "_lifecycle") as app:
        http = app.http
        session_id = await app.open_session(capacity=1, review_required=True, country_limit=1)
        ids = [
            await register(app, full_name=f"Trainee {n}", country="KE", organization=f"Org {n}")
            for n in range(3)
        ]
        apps = [
            (await http.post(f"/sessions/{session_id}/enrollments", json={"trainee_id": t})).json()
            for t in ids
        ]
        assert {a["status"] for a in apps} == {"submitted"}
        first, second, third = (a["id"] for a in apps)
        # Time-ordered ids (UUIDv7): the tables' indexes take new rows at their end.
        assert {uuid.UUID(i).version for i in [*ids, first, second, third]} == {7}
        assert sorted(ids) == ids
        assert sorted([first, second, third]) == [first, second, third]

        early = await http.post(f"/enrollments/{first}/check-in")
        assert early.status_code == 409
        assert early.headers["content-type"] == "application/problem+json"
        assert early.json()["current_status"] == "submitted"
        assert early.json()["allowed_transitions"] == [
            "accept",
            "cancel",
            "reject",
            "waitlist",
            "withdraw",
        ]

        assert (await http.post(f"/enrollments/{first}/accept")).json()["status"] == "accepted"
        full = await http.post(f"/enrollments/{second}/accept")
        assert full.status_code == 409
        waiting = (await http.post(f"/enrollments/{second}/waitlist")).json()
        assert (waiting["status"], waiting["waitlist_position"]) == ("waitlisted", 1)
        # A reason is a category; the operator's words go in the note.
        untyped = await http.post(f"/enrollments/{third}/reject", json={"reason": "no degree"})
        assert untyped.status_code == 422
        assert [e["field"] for e in untyped.json()["errors"]] == ["reason"]
        note = "No engineering degree on file"
        rejected = await http.post(
            f"/enrollments/{third}/reject", json={"reason": "not_eligible", "note": note}
        )
        assert [rejected.json()[k] for k in ("status", "reason", "note")] == [
            "rejected",
            "not_eligible",
            note,
        ]
        assert (await http.get(f"/enrollments/{third}")).json()["note"] == note
        [sent] = await app.fetch(
            "SELECT payload FROM outbox_message WHERE event_type = $1",
            "tpp.enrollment.enrollment.rejected.v1",
        )
        assert "not_eligible" in str(sent["payload"])
        assert note not in str(sent["payload"])
        assert (
            await http.post(f"/enrollments/{third}/reject", json={"reason": "other"})
        ).status_code == 409

        assert (
            await http.post(f"/enrollments/{first}/evaluation", json={"score": 5})
        ).status_code == 409
        withdrawn = (await http.post(f"/enrollments/{second}/withdraw")).json()
        assert withdrawn["status"] == "withdrawn"
        # One enrollment a trainee and session: the refusal names the one there is.
        again = await http.post(f"/sessions/{session_id}/enrollments", json={"trainee_id": ids[1]})
        assert again.status_code == 409
        refusal = again.json()
        assert (refusal["field"], refusal["enrollment_id"], refusal["enrollment_status"]) == (
            "trainee_id",
            second,
            "withdrawn",
        )
        assert "withdrawn" in refusal["detail"]

        # Attendance waits for the session (published, starting 2031-05-01): 409, said why.
        for action in ("check-in", "no-show"):
            not_yet = await http.post(f"/enrollments/{first}/{action}")
            assert not_yet.status_code == 409, not_yet.text
            assert not_yet.json()["title"] == "Session not started"
            assert not_yet.json()["session_start_date"] == "2031-05-01"
            assert not_yet.json()["session_status"] == "published"
            assert "2031-05-01" in not_yet.json()["detail"]
        assert (await http.get(f"/enrollments/{first}")).json()["status"] == "accepted"
        await app.start_session(session_id)
        assert (await http.post(f"/enrollments/{first}/check-in")).json()["status"] == "attended"
        evaluation = await http.post(
            f"/enrollments/{first}/evaluation", json={"score": 4, "comment": "Very practical"}
        )
        assert evaluation.status_code == 201
        again = await http.post(f"/enrollments/{first}/evaluation", json={"score": 1})
        assert again.status_code == 409
        bad = await http.post(f"/enrollments/{first}/evaluation", json={"score": 6})
        assert bad.status_code == 422

        follow = {"followed_up_on": "2031-09-01", "channel": "email", "outcome": "no_contact"}
        assert (await http.post(f"/enrollments/{first}/follow-ups", json=follow)).status_code == 409
        # Not before the session starts (2031-05-01).
        early = await http.post(
            f"/enrollments/{first}/complete", json={"completed_on": "2031-04-30"}
        )
        assert (early.status_code, early.json()["field"]) == (422, "completed_on")
        assert early.json()["title"] == "Completion before the session's start"
        assert "2031-05-01" in early.json()["detail"]
        done = (
            await http.post(f"/enrollments/{first}/complete", json={"completed_on": "2031-05-20"})
        ).json()
        assert done["status"] == "completed"
        assert done["certificate_number"].startswith("TPP-2031-")
        assert (await http.post(f"/enrollments/{first}/complete")).status_code == 409

        due = (await http.get("/follow-ups/due", params={"as_of": "2031-08-20"})).json()
        assert [(d["enrollment_id"], d["months"], d["due_on"], d["closes_on"]) for d in due] == [
            (first, 3, "2031-08-20", "2031-10-05")  # halfway to the 6-month one (2031-11-20)
        ]
        assert (await http.get("/follow-ups/due", params={"as_of": "2031-08-19"})).json() == []
        # A day whose 3, 6, 12 months before fall outside the calendar: refused, not a 500.
        odd = await http.get("/follow-ups/due", params={"as_of": "0001-01-05"})
        assert odd.status_code == 422
        assert [e["field"] for e in odd.json()["errors"]] == ["as_of"]
        recorded = await http.post(
            f"/enrollments/{first}/follow-ups",
            json=follow | {"outcome": "technology_adopted", "note": "Installed two pumps"},
        )
        assert recorded.status_code == 201
        # Before the completion: refused, with the field at fault.
        early = await http.post(
            f"/enrollments/{first}/follow-ups", json=follow | {"followed_up_on": "2031-05-19"}
        )
        assert (early.status_code, early.json()["field"]) == (422, "followed_up_on")
        # A second call the same week meets the 3-month milestone again, not the 6-month one.
        again = await http.post(
            f"/enrollments/{first}/follow-ups", json=follow | {"followed_up_on": "2031-09-03"}
        )
        assert again.status_code == 201
        assert (await http.get("/follow-ups/due", params={"as_of": "2031-11-19"})).json() == []
        due = (await http.get("/follow-ups/due", params={"as_of": "2031-12-01"})).json()
        assert [(d["months"], d["due_on"], d["recorded"]) for d in due] == [(6, "2031-11-20", 2)]
        # Missed once its window closes; the 12-month one is due in its turn.
        assert (await http.get("/follow-ups/due", params={"as_of": "2032-02-19"})).json() == []
        due = (await http.get("/follow-ups/due", params={"as_of": "2032-06-01"})).json()
        assert [(d["months"], d["due_on"]) for d in due] == [(12, "2032-05-20")]
        listed = (await http.get(f"/enrollments/{first}/follow-ups")).json()
        assert [f["outcome"] for f in listed] == ["technology_adopted", "no_contact"]

        history = (await http.get(f"/trainees/{ids[0]}/enrollments")).json()
        assert [h["status"] for h in history] == ["completed"]
        found = (await http.get("/trainees", params={"name": "trainee 1", "country": "ke"})).json()
        assert [t["id"] for t in found["items"]] == [ids[1]]
        by_organization = (await http.get("/trainees", params={"organization": "org 2"})).json()
        assert [t["id"] for t in by_organization["items"]] == [ids[2]]
        rows = await app.fetch("SELECT event_type FROM outbox_message ORDER BY id")
        kinds = [r["event_type"].removeprefix("tpp.enrollment.") for r in rows]
        assert kinds.count("enrollment.submitted.v1") == 3
        assert "evaluation.submitted.v1" in kinds
        assert "follow_up.recorded.v1" in kinds
        assert "enrollment.completed.v1" in kinds


async def test_each_completion_gets_its_own_certificate_number(databases: Any) -> None:
    async with enrollment_app(databases, "_certificates") as app:
        http = app.http
        session_id = await app.open_session(capacity=3)
        numbers = []
        enrollments = []
        for n in range(3):
            trainee = await register(app, full_name=f"Graduate {n}")
            enrolled = await http.post(
                f"/sessions/{session_id}/enrollments", json={"trainee_id": trainee}
            )
            enrollments.append(enrolled.json()["id"])
        await app.start_session(session_id)
        for enrollment in enrollments:
            assert (await http.post(f"/enrollments/{enrollment}/check-in")).status_code == 200
            done = await http.post(
                f"/enrollments/{enrollment}/complete", json={"completed_on": "2031-05-20"}
            )
            numbers.append(done.json()["certificate_number"])
        assert len(set(numbers)) == 3
        assert all(number.startswith("TPP-2031-") for number in numbers)
        listed = (await http.get(f"/sessions/{session_id}/enrollments")).json()
        assert sorted(e["certificate_number"] for e in listed) == sorted(numbers)
