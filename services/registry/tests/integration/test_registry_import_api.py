"""Bulk import of a year's sessions from CSV: a report per row, nothing created twice."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration

HEADER = "organizer,title,field,start_date,end_date,venue_city,venue_country,capacity,languages"


def csv_file(organizer: str, year: int) -> bytes:
    """Three good rows and three bad ones (unknown organizer, bad dates, bad country)."""
    rows = [
        HEADER,
        f"{organizer},Solar PV,new_energy,{year}-04-01,{year}-04-20,Hangzhou,CN,30,en",
        f'{organizer},"Rice breeding, advanced",agriculture_forestry,{year}-05-01,{year}-05-20,'
        f"Changsha,CN,25,en;fr",
        f"Nobody Institute,Tele-medicine,medical_health,{year}-06-01,{year}-06-20,Beijing,CN,20,en",
        f"{organizer},Backwards,information_technology,{year}-07-20,{year}-07-01,Xi'an,CN,20,en",
        f"{organizer},Bad place,marine,{year}-08-01,{year}-08-20,Atlantis,QQ,20,en",
        f"{organizer},Grid storage,new_energy,{year}-09-01,{year}-09-20,Nairobi,KE,20,en",
    ]
    return ("\n".join(rows) + "\n").encode()


async def test_an_import_reports_each_row_and_creates_the_valid_ones_once(
    registry: Any, new_organizer: Any, year: int
) -> None:
    organizer = await new_organizer()
    content = csv_file(organizer["name"].upper(), year)
    files = {"file": ("plan.csv", content, "text/csv")}
    first = await registry.post("/sessions/import", params={"year": year}, files=files)
    assert first.status_code == 200, first.text
    report = first.json()
    assert (report["created"], report["rejected"], report["duplicates"]) == (3, 3, 0)
    outcomes = {r["row"]: (r["outcome"], r.get("field")) for r in report["rows"]}
    assert outcomes[2] == ("created", None)
    assert outcomes[4] == ("rejected", "organizer")
    assert outcomes[5] == ("rejected", "end_date")
    assert outcomes[6] == ("rejected", "venue_country")
    mine = {"year": year, "organizer_id": organizer["id"]}
    listed = (await registry.get("/sessions", params=mine)).json()["items"]
    assert sorted(s["title"] for s in listed) == [
        "Grid storage",
        "Rice breeding, advanced",
        "Solar PV",
    ]
    assert [s["overseas"] for s in listed if s["title"] == "Grid storage"] == [True]

    again = await registry.post("/sessions/import", params={"year": year}, files=files)
    assert (again.json()["created"], again.json()["duplicates"]) == (0, 3)
    assert len((await registry.get("/sessions", params=mine)).json()["items"]) == 3


async def test_rows_of_another_year_are_rejected(
    registry: Any, new_organizer: Any, year: int
) -> None:
    organizer = await new_organizer()
    content = csv_file(organizer["id"], year)
    other = year + 1 if year < 2100 else year - 1
    response = await registry.post(
        "/sessions/import",
        params={"year": other},
        files={"file": ("plan.csv", content, "text/csv")},
    )
    assert response.json()["created"] == 0
    fields = {r["row"]: r["field"] for r in response.json()["rows"]}
    assert [fields[2], fields[3], fields[7]] == ["year", "year", "year"]


async def test_a_file_without_the_needed_columns_is_refused(registry: Any) -> None:
    response = await registry.post(
        "/sessions/import", files={"file": ("x.csv", b"title,capacity\nA,3\n", "text/csv")}
    )
    assert response.status_code == 422
    assert "organizer" in response.json()["missing"]
