"""The walking skeleton across the three services, on real Kafka and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from tpp_testkit import fresh_year

pytestmark = pytest.mark.integration


def session_body(organizer_id: str, year: int, **overrides: Any) -> dict[str, Any]:
    """A valid new session; override any field."""
    body = {
        "organizer_id": organizer_id,
        "title": "Solar micro-grids for rural electrification",
        "field": "new_energy",
        "year": year,
        "start_date": f"{year}-05-10",
        "end_date": f"{year}-05-30",
        "venue_city": "Hangzhou",
        "venue_country": "CN",
        "capacity": 30,
        "languages": ["en"],
    }
    return body | overrides


def trainee_body(**overrides: Any) -> dict[str, Any]:
    """A valid new trainee with a unique passport number; override any field."""
    body = {
        "full_name": "Amina Njoroge",
        "country": "KE",
        "gender": "female",
        "profession": "technical_professional",
        "organization": "Kenya Power",
        "email": "amina@example.org",
        "passport_number": f"K{uuid.uuid4().hex[:9].upper()}",
        "birth_date": "1988-03-14",
    }
    return body | overrides


async def test_session_published_in_registry_is_enrolled_into_and_counted(
    platform: Any, eventually: Any
) -> None:
    year = fresh_year()  # a year no other test uses: the year's counts are ours
    organizer = await platform.registry.http.post(
        "/organizers",
        json={
            "name": f"Zhejiang University {uuid.uuid4().hex[:6]}",
            "kind": "university",
            "province": "Zhejiang",
            "country": "CN",
        },
    )
    assert organizer.status_code == 201, organizer.text
    created = await platform.registry.http.post(
        "/sessions", json=session_body(organizer.json()["id"], year, venue_country="KE")
    )
    assert created.status_code == 201, created.text
    session = created.json()
    assert session["status"] == "draft"
    assert session["overseas"] is True
    published = await platform.registry.http.post(f"/sessions/{session['id']}/publish")
    assert published.status_code == 200, published.text

    async def enrollment_sees_it_open() -> dict[str, Any] | None:
        response = await platform.enrollment.http.get(f"/sessions/{session['id']}")
        if response.status_code == 200 and response.json()["status"] == "published":
            opened: dict[str, Any] = response.json()
            return opened
        return None

    view = await eventually(enrollment_sees_it_open, what="session view published")
    assert view["capacity"] == 30

    trainee = await platform.enrollment.http.post("/trainees", json=trainee_body())
    assert trainee.status_code == 201, trainee.text
    enrolled = await platform.enrollment.http.post(
        f"/sessions/{session['id']}/enrollments", json={"trainee_id": trainee.json()["id"]}
    )
    assert enrolled.status_code == 201, enrolled.text
    assert enrolled.json()["status"] == "accepted"

    async def reporting_counts_it() -> dict[str, Any] | None:
        report = (await platform.reporting.http.get(f"/reports/years/{year}")).json()
        return report if report["trainees_enrolled"] == 1 else None

    year_report = await eventually(reporting_counts_it, what="reporting counts the enrollment")
    assert year_report["sessions"] == 1
    assert year_report["sessions_published"] == 1
    assert year_report["sessions_overseas"] == 1
    assert year_report["trainees_accepted"] == 1
    assert year_report["countries_reached"] == 1
    per_session = (await platform.reporting.http.get(f"/reports/sessions/{session['id']}")).json()
    assert per_session["enrolled"] == 1
    assert per_session["accepted"] == 1
    assert per_session["year"] == year


async def test_enrolling_in_an_unpublished_session_is_refused(
    platform: Any, eventually: Any
) -> None:
    year = fresh_year()
    organizer = await platform.registry.http.post(
        "/organizers",
        json={
            "name": f"CAS Institute {uuid.uuid4().hex[:6]}",
            "kind": "research_institute",
            "country": "CN",
        },
    )
    draft = (
        await platform.registry.http.post(
            "/sessions", json=session_body(organizer.json()["id"], year)
        )
    ).json()

    async def enrollment_sees_draft() -> bool:
        response = await platform.enrollment.http.get(f"/sessions/{draft['id']}")
        status: int = response.status_code
        return status == 200

    await eventually(enrollment_sees_draft, what="session view has the draft")
    trainee = (await platform.enrollment.http.post("/trainees", json=trainee_body())).json()
    refused = await platform.enrollment.http.post(
        f"/sessions/{draft['id']}/enrollments", json={"trainee_id": trainee["id"]}
    )
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["session_status"] == "draft"


async def test_registering_the_same_passport_twice_returns_the_first_trainee(
    platform: Any,
) -> None:
    body = trainee_body()
    first = await platform.enrollment.http.post("/trainees", json=body)
    again = await platform.enrollment.http.post(
        "/trainees", json=body | {"full_name": "Amina W. Njoroge"}
    )
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
