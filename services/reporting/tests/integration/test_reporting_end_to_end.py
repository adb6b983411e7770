"""Reporting on real Kafka and PostgreSQL, driven by the registry and enrollment services."""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from typing import Any

import pytest

from .reporting_support import Program, fresh_year, ok

pytestmark = pytest.mark.integration


async def wait_for(platform: Any, eventually: Any, path: str, check: Any, what: str) -> Any:
    async def poll() -> Any:
        response = await platform.reporting.http.get(path)
        if response.status_code != 200:
            return None
        body = response.json()
        return body if check(body) else None

    return await eventually(poll, within=30, what=what)


@pytest.fixture(scope="module")
async def year_of_events(platform: Any) -> dict[str, Any]:
    """A year of the program: plans, three sessions, five trainees, their whole path."""
    program = Program(platform.registry.http, platform.enrollment.http)
    year = fresh_year()
    await program.plan(year, planned=2, overseas=1)
    await program.plan(year + 1, planned=3)
    organizer = await program.organizer("Zhejiang University")
    other = await program.organizer("Kenya Agricultural Research Institute")
    held = await program.session(organizer, year, capacity=2, title="Solar grids")
    abroad = await program.session(
        other, year, venue_country="KE", field="agriculture_forestry", title="Drip irrigation"
    )
    cancelled = await program.session(organizer, year, publish=False, title="Wind")
    t1 = await program.trainee("KE", "female", "expert")
    t2 = await program.trainee("NG", "male", "scholar")
    t3 = await program.trainee("KE", "female", "technical_professional")
    t4 = await program.trainee("BR", "male", "st_official")
    e1 = await program.enroll(held, t1)
    e2 = await program.enroll(held, t2)
    e3 = await program.enroll(held, t3)
    assert (e1["status"], e2["status"], e3["status"]) == ("accepted", "accepted", "waitlisted")
    e4 = await program.enroll(abroad, t4)
    await program.enroll(abroad, t1)  # the same person in two sessions of the year
    await program.lifecycle(held, "close-enrollment", "start")
    await program.step(e1["id"], "check-in")
    await program.step(e1["id"], "complete", {"completed_on": f"{year}-05-30"})
    await program.step(e2["id"], "no-show")
    ok(
        await platform.enrollment.http.post(
            f"/enrollments/{e1['id']}/evaluation", json={"score": 4}
        )
    )
    ok(
        await platform.enrollment.http.post(
            f"/enrollments/{e1['id']}/follow-ups",
            json={
                "followed_up_on": f"{year}-09-01",
                "channel": "email",
                "outcome": "technology_adopted",
            },
        )
    )
    await program.lifecycle(held, "complete")
    reg = await platform.registry.http.post(
        f"/sessions/{cancelled}/cancel", json={"reason": "organizer withdrew"}
    )
    assert reg.status_code == 200, reg.text
    await program.step(e4["id"], "withdraw", {"reason": "visa_or_travel"})
    return {
        "year": year,
        "held": held,
        "abroad": abroad,
        "cancelled": cancelled,
        "organizer": organizer,
    }


async def test_a_year_counts_plans_sessions_trainees_and_countries(
    platform: Any, eventually: Any, year_of_events: dict[str, Any]
) -> None:
    year = year_of_events["year"]
    report = await wait_for(
        platform,
        eventually,
        f"/reports/years/{year}",
        lambda r: (
            r["sessions_cancelled"] == 1
            and r["trainees_completed"] == 1
            and r["enrollments"] == 5
            and r["trainees_accepted"] == 2
        ),
        "the year's figures",
    )
    assert report["sessions_planned"] == 2
    assert report["sessions_planned_overseas"] == 1
    assert report["sessions"] == 3
    assert report["sessions_published"] == 3  # a cancelled session is past draft
    assert report["sessions_held"] == report["sessions_completed"] == 1
    assert report["sessions_overseas"] == 1
    assert report["trainees_enrolled"] == 4  # t1 applied twice: one person
    assert report["trainees_accepted"] == 2  # t1 (completed) and t2 (no-show)
    assert report["countries_reached"] == 2  # KE, NG (BR withdrew)
    # the year before had nothing: growth is n/a, not an error
    assert report["growth"]["sessions_held"] is None
    assert report["freshness"]["data_as_of"] is not None
    assert report["freshness"]["events_applied"] > 0


async def test_growth_is_computed_against_the_year_before_and_next_years_plan(
    platform: Any, eventually: Any, year_of_events: dict[str, Any]
) -> None:
    year = year_of_events["year"]
    await wait_for(
        platform,
        eventually,
        f"/reports/years/{year}",
        lambda r: r["sessions_held"] == 1,
        "the held session",
    )
    following = ok(await platform.reporting.http.get(f"/reports/years/{year + 1}"))
    assert following["sessions_planned"] == 3
    assert following["growth"]["sessions_planned"] == 50.0  # 2 planned, then 3
    review = ok(await platform.reporting.http.get(f"/reports/annual-review/{year}"))
    assert review["next_year"] == {
        "year": year + 1,
        "sessions_planned": 3,
        "sessions_planned_overseas": 0,
        "growth_vs_held": 200.0,  # 1 held this year, 3 planned next
    }
    trend = ok(await platform.reporting.http.get(f"/reports/years?from={year}&to={year + 1}"))
    assert [y["year"] for y in trend["years"]] == [year, year + 1]


async def test_session_figures_fill_waitlist_completion_no_show_evaluations(
    platform: Any, eventually: Any, year_of_events: dict[str, Any]
) -> None:
    held = year_of_events["held"]
    report = await wait_for(
        platform,
        eventually,
        f"/reports/sessions/{held}",
        lambda r: r["status"] == "completed" and r["evaluations"] == 1,
        "the session's figures",
    )
    assert report["capacity"] == 2
    assert report["enrolled"] == 3
    assert report["accepted"] == 2
    assert report["fill_rate"] == 1.0
    assert report["waitlist_length"] == report["waitlisted"] == 1
    assert report["completion_rate"] == 0.5
    assert report["no_show_rate"] == 0.5
    assert report["evaluation_average"] == 4.0
    assert report["organizer"].startswith("Zhejiang University")
    listed = ok(
        await platform.reporting.http.get(
            "/reports/sessions",
            params={"year": year_of_events["year"], "field": "agriculture_forestry"},
        )
    )
    assert [r["session_id"] for r in listed["rows"]] == [year_of_events["abroad"]]
    assert listed["rows"][0]["fill_rate"] == round(1 / 30, 3)


async def test_breakdowns_by_country_region_field_organizer_profession_gender(
    platform: Any, eventually: Any, year_of_events: dict[str, Any]
) -> None:
    year = year_of_events["year"]
    base = f"/reports/years/{year}/breakdown"
    countries = await wait_for(
        platform,
        eventually,
        f"{base}/country",
        lambda r: (
            sum(row["trainees_completed"] for row in r["rows"]) == 1
            and sum(row["enrollments"] for row in r["rows"]) == 5
        ),
        "the breakdown by country",
    )
    by_country = {r["key"]: r for r in countries["rows"]}
    assert by_country["KE"]["label"] == "Kenya"
    assert by_country["KE"]["region"] == "Africa"
    assert (by_country["KE"]["trainees_enrolled"], by_country["KE"]["trainees_completed"]) == (2, 1)
    assert by_country["BR"]["trainees_accepted"] == 0
    regions = {r["key"]: r for r in ok(await platform.reporting.http.get(f"{base}/region"))["rows"]}
    assert regions["Africa"]["trainees_accepted"] == 2
    assert regions["Americas"]["trainees_enrolled"] == 1
    fields = {r["key"]: r for r in ok(await platform.reporting.http.get(f"{base}/field"))["rows"]}
    assert fields["new_energy"]["sessions"] == 2
    assert fields["new_energy"]["sessions_held"] == 1
    assert fields["agriculture_forestry"]["trainees_enrolled"] == 2
    organizers = ok(await platform.reporting.http.get(f"{base}/organizer"))["rows"]
    mine = next(r for r in organizers if r["key"] == year_of_events["organizer"])
    assert mine["label"].startswith("Zhejiang University")
    assert (mine["sessions"], mine["sessions_held"], mine["sessions_cancelled"]) == (2, 1, 1)
    genders = {r["key"]: r for r in ok(await platform.reporting.http.get(f"{base}/gender"))["rows"]}
    assert genders["female"]["trainees_enrolled"] == 2
    professions = ok(await platform.reporting.http.get(f"{base}/profession"))["rows"]
    assert {r["key"] for r in professions} == {
        "expert",
        "scholar",
        "technical_professional",
        "st_official",
    }


async def test_follow_up_coverage_and_outcomes(
    platform: Any, eventually: Any, year_of_events: dict[str, Any]
) -> None:
    year = year_of_events["year"]
    report = await wait_for(
        platform,
        eventually,
        f"/reports/years/{year}/follow-ups",
        lambda r: r["outcomes"],
        "the follow-up",
    )
    assert report["trainees_completed"] == 1
    assert report["trainees_followed_up"] == 1
    assert report["coverage"] == 1.0
    assert report["outcomes"] == [{"outcome": "technology_adopted", "follow_ups": 1, "trainees": 1}]


async def test_csv_exports_hold_the_same_figures_and_say_how_fresh_they_are(
    platform: Any, eventually: Any, year_of_events: dict[str, Any]
) -> None:
    year = year_of_events["year"]
    report = await wait_for(
        platform,
        eventually,
        f"/reports/years/{year}",
        lambda r: r["trainees_completed"] == 1 and r["sessions_cancelled"] == 1,
        "the year",
    )
    paths = [
        f"/reports/years?from={year}&to={year}",
        f"/reports/years/{year}",
        f"/reports/sessions?year={year}",
        f"/reports/years/{year}/follow-ups",
        f"/reports/annual-review/{year}",
        f"/reports/annual-review/{year}?table=countries",
        "/commitments",
        *(
            f"/reports/years/{year}/breakdown/{by}"
            for by in ("country", "region", "field", "organizer", "profession", "gender")
        ),
    ]
    for path in paths:
        sep = "&" if "?" in path else "?"
        response = await platform.reporting.http.get(f"{path}{sep}fmt=csv")
        assert response.status_code == 200, (path, response.text)
        assert response.headers["content-type"].startswith("text/csv")
        assert response.headers["x-data-as-of"], path
        assert "attachment" in response.headers["content-disposition"]
    response = await platform.reporting.http.get(f"/reports/years?from={year}&to={year}&fmt=csv")
    (row,) = list(csv.DictReader(io.StringIO(response.text)))
    assert int(row["trainees_completed"]) == report["trainees_completed"]
    assert row["growth_sessions_held"] == ""  # n/a: no sessions the year before
    sessions = await platform.reporting.http.get(f"/reports/sessions?year={year}&fmt=csv")
    rows = {r["session_id"]: r for r in csv.DictReader(io.StringIO(sessions.text))}
    assert rows[year_of_events["held"]]["fill_rate"] == "1.0"


async def test_every_report_says_how_fresh_it_is_with_the_consumer_lag(
    platform: Any, eventually: Any, year_of_events: dict[str, Any]
) -> None:
    async def lag_measured() -> Any:
        body = ok(await platform.reporting.http.get("/reports/freshness"))
        return body if body["consumer_lag"] is not None else None

    freshness = await eventually(lag_measured, within=30, what="the consumer lag")
    topics = {p["topic"] for p in freshness["lag_by_partition"]}
    assert f"{platform.kafka.topic_prefix}enrollment.enrollments.v1" in topics
    assert f"{platform.kafka.topic_prefix}registry.plans.v1" in topics
    assert all(p["lag"] >= 0 for p in freshness["lag_by_partition"])
    response = await platform.reporting.http.get(f"/reports/years/{year_of_events['year']}")
    assert response.headers["x-data-as-of"] != "none"
    assert response.headers["x-consumer-lag"].isdigit()


async def test_commitments_report_progress_time_elapsed_and_pace_needed(
    platform: Any, eventually: Any, year_of_events: dict[str, Any]
) -> None:
    year = year_of_events["year"]
    await wait_for(
        platform,
        eventually,
        f"/reports/years/{year}",
        lambda r: r["trainees_completed"] == 1,
        "the completion",
    )
    body = {
        "name": "Technicians trained",
        "metric": "trainees_completed",
        "target": 4,
        "start_year": year,
        "end_year": year + 1,
        "region": "Africa",
    }
    created = await platform.reporting.http.post("/commitments", json=body)
    assert created.status_code == 201, created.text
    progress = created.json()
    assert progress["achieved"] == 1
    assert progress["share_achieved"] == 0.25
    assert progress["by_year"] == {str(year): 1, str(year + 1): 0}
    today = date.today()
    if today.year > year + 1:
        assert progress["share_of_time_elapsed"] == 1.0
        assert progress["yearly_pace_needed"] is None
    elif today.year < year:
        assert progress["share_of_time_elapsed"] == 0.0
        assert progress["yearly_pace_needed"] == 1.5
    assert created.headers["location"] == f"/commitments/{progress['commitment_id']}"
    elsewhere = await platform.reporting.http.post(
        "/commitments", json=body | {"region": "Europe", "field": "new_energy"}
    )
    assert elsewhere.json()["achieved"] == 0
    review = ok(await platform.reporting.http.get(f"/reports/annual-review/{year}"))
    assert {c["commitment_id"] for c in review["commitments"]} >= {
        progress["commitment_id"],
        elsewhere.json()["commitment_id"],
    }
    bad = await platform.reporting.http.post("/commitments", json=body | {"region": "Atlantis"})
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    backwards = await platform.reporting.http.post(
        "/commitments", json=body | {"end_year": year - 1}
    )
    assert backwards.status_code == 422
    changed = await platform.reporting.http.put(
        f"/commitments/{progress['commitment_id']}", json=body | {"target": 2}
    )
    assert changed.json()["share_achieved"] == 0.5
    gone = await platform.reporting.http.delete(f"/commitments/{progress['commitment_id']}")
    assert gone.status_code == 204
    missing = await platform.reporting.http.get(f"/commitments/{progress['commitment_id']}")
    assert missing.status_code == 404


async def test_the_annual_review_presents_the_year(
    platform: Any, eventually: Any, year_of_events: dict[str, Any]
) -> None:
    year = year_of_events["year"]
    await wait_for(
        platform,
        eventually,
        f"/reports/years/{year}",
        lambda r: r["trainees_completed"] == 1 and r["sessions_cancelled"] == 1,
        "the year",
    )
    review = ok(await platform.reporting.http.get(f"/reports/annual-review/{year}"))
    assert review["figures"]["sessions_held"] == 1
    assert review["figures"]["trainees_completed"] == 1
    assert [c["key"] for c in review["countries"]] == ["KE", "NG"]
    assert review["regions"] == ["Africa"]
    assert review["fields_covered"] == ["new_energy"]
    first = review["organizers"][0]
    assert first["name"].startswith("Zhejiang University")
    assert (first["sessions_held"], first["trainees_completed"]) == (1, 1)
    assert review["evaluation_average"] == 4.0
    assert review["follow_up_coverage"] == 1.0


async def test_overseas_sessions_planned_held_and_cancelled_are_separate_figures(
    platform: Any, eventually: Any
) -> None:
    """One overseas session held, one only published, one cancelled, one never published."""
    program = Program(platform.registry.http, platform.enrollment.http)
    year = fresh_year()
    await program.plan(year, planned=5, overseas=2)
    organizer = await program.organizer("Chinese Academy of Tropical Agricultural Sciences")
    abroad: dict[str, Any] = {"venue_country": "ET", "venue_city": "Addis Ababa"}
    held = await program.session(organizer, year, title="Cassava", capacity=5, **abroad)
    published = await program.session(organizer, year, title="Rubber", capacity=4, **abroad)
    cancelled = await program.session(organizer, year, title="Coffee", capacity=3, **abroad)
    await program.session(organizer, year, publish=False, title="Draft", capacity=7, **abroad)
    first, second = [await program.trainee(c, "female", "expert") for c in ("ET", "KE")]
    places = [await program.enroll(held, t) for t in (first, second)]
    await program.enroll(published, first)  # one person in two sessions: two places
    await program.lifecycle(held, "close-enrollment", "start")
    await program.step(places[0]["id"], "check-in")
    await program.step(places[0]["id"], "complete", {"completed_on": f"{year}-05-30"})
    await program.lifecycle(held, "complete")
    ok(
        await platform.registry.http.post(
            f"/sessions/{cancelled}/cancel", json={"reason": "visa delays"}
        )
    )
    report = await wait_for(
        platform,
        eventually,
        f"/reports/years/{year}",
        lambda r: (
            r["sessions"] == 4
            and r["sessions_held"] == 1
            and r["sessions_cancelled"] == 1
            and r["trainees_completed"] == 1
            and r["enrollments"] == 3
        ),
        "the overseas year",
    )
    assert report["sessions_planned_overseas"] == 2
    assert report["sessions_overseas_held"] == 1  # not the published one, not the draft
    assert report["sessions_overseas_cancelled"] == 1
    assert report["sessions_overseas"] == 3  # past draft: held, published, cancelled
    assert report["growth"]["sessions_overseas_held"] is None  # none held abroad the year before
    schema = platform.reporting.app.openapi()["components"]["schemas"]["YearReport"]
    assert "not necessarily held" in schema["properties"]["sessions_overseas"]["description"]

    page = await platform.reporting.http.get(f"/reports/annual-review/{year}?fmt=html")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    shown = {
        key: re.findall(rf'data-testid="review-{key}">([^<]*)<', page.text)[0]
        for key in (
            "sessions_planned_overseas",
            "sessions_overseas_held",
            "sessions_overseas_cancelled",
        )
    }
    assert shown == {
        "sessions_planned_overseas": "2",
        "sessions_overseas_held": "1",
        "sessions_overseas_cancelled": "1",
    }
    assert "Overseas held" in page.text
    assert "Held overseas" not in page.text


async def test_commitments_count_places_and_show_small_progress_as_a_percent(
    platform: Any, eventually: Any
) -> None:
    program = Program(platform.registry.http, platform.enrollment.http)
    year = fresh_year()
    organizer = await program.organizer("Beijing Agricultural Training Center")
    big = await program.session(organizer, year, field="agriculture_forestry", capacity=6)
    small = await program.session(organizer, year, field="agriculture_forestry", capacity=2)
    await program.session(organizer, year, field="agriculture_forestry", publish=False)
    gone = await program.session(organizer, year, field="agriculture_forestry", capacity=9)
    ok(await platform.registry.http.post(f"/sessions/{gone}/cancel", json={"reason": "floods"}))
    people = [await program.trainee(c, "male", "scholar") for c in ("LA", "KH", "MM")]
    for person in people:
        await program.enroll(big, person)
    places = [await program.enroll(small, person) for person in people]
    assert [p["status"] for p in places] == ["accepted", "accepted", "waitlisted"]
    await program.lifecycle(big, "close-enrollment", "start")
    await wait_for(
        platform,
        eventually,
        f"/reports/years/{year}",
        lambda r: r["enrollments"] == 6 and r["sessions_cancelled"] == 1,
        "the year's places",
    )

    async def commitment(metric: str, target: int) -> dict[str, Any]:
        body = {
            "name": f"{metric} {year}",
            "metric": metric,
            "target": target,
            "start_year": year,
            "end_year": year + 4,
            "field": "agriculture_forestry",
        }
        return ok(await platform.reporting.http.post("/commitments", json=body))

    # Training opportunities taken up: five places given to three people.
    opportunities = await commitment("places_given", 120_000)
    assert opportunities["achieved"] == 5
    assert (await commitment("trainees_accepted", 10))["achieved"] == 3
    # Offered: the capacity of the sessions published and not cancelled (6 + 2).
    assert (await commitment("places_offered", 100))["achieved"] == 8
    # Small progress keeps its size: 5 of 120,000 is a fraction of 0.00004167.
    assert opportunities["share_achieved"] == pytest.approx(5 / 120_000, rel=1e-3)
    assert opportunities["share_achieved"] > 0
    page = await platform.reporting.http.get(f"/reports/annual-review/{year}?fmt=html")
    row = next(r for r in page.text.split("<tr>") if f"places_given {year}" in r)
    assert 'data-testid="review-share-achieved">0.0042%<' in row
    schema = platform.reporting.app.openapi()["components"]["schemas"]
    assert (
        "not a percent"
        in schema["CommitmentProgress"]["properties"]["share_achieved"]["description"]
    )
    described = schema["CommitmentIn"]["properties"]["metric"]["description"]
    for metric in ("places_given", "places_offered", "trainees_completed", "sessions_held"):
        assert f"`{metric}`" in described
    assert "scholarship" in described


async def test_the_trend_lists_only_years_with_a_plan_or_a_session(
    platform: Any, eventually: Any
) -> None:
    program = Program(platform.registry.http, platform.enrollment.http)
    year = fresh_year()
    await program.plan(year + 1, planned=2)
    await wait_for(
        platform,
        eventually,
        f"/reports/years/{year + 1}",
        lambda r: r["sessions_planned"] == 2,
        "the plan",
    )
    organizer = await program.organizer("Lanzhou Desert Research Station")
    await program.session(organizer, year - 1, publish=False, title="Sand dunes")
    await wait_for(
        platform,
        eventually,
        f"/reports/years/{year - 1}",
        lambda r: r["sessions"] == 1,
        "the draft session",
    )
    trend = ok(await platform.reporting.http.get(f"/reports/years?from={year - 1}&to={year + 1}"))
    assert [y["year"] for y in trend["years"]] == [year - 1, year + 1]  # not the empty year
    every = ok(await platform.reporting.http.get("/reports/years"))
    assert all(y["sessions"] or y["sessions_planned"] is not None for y in every["years"])
