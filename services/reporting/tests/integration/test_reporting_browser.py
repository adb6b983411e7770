"""The dashboard and the annual review in headless Chromium show what the API says.

Uses Debian's chromium (/usr/bin/chromium, installed by .ci/run) through Playwright; the
screenshots are saved under test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from tpp_plumbing.web.auth import dev_token

from .reporting_support import Program, fresh_year, ok

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[4] / "test-artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
FIGURES = [
    "sessions_planned",
    "sessions_held",
    "sessions_cancelled",
    "sessions_planned_overseas",
    "sessions_overseas_held",
    "sessions_overseas_cancelled",
    "trainees_enrolled",
    "trainees_accepted",
    "trainees_completed",
    "countries_reached",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """The (already started) app over real HTTP on a loopback port, for the browser."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not server.started:
        assert loop.time() < deadline, "uvicorn did not start"
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does)")
    return CHROMIUM


async def test_dashboard_and_annual_review_show_the_figures_the_api_gives(
    platform: Any, eventually: Any, chromium: Path
) -> None:
    from playwright.async_api import async_playwright

    program = Program(platform.registry.http, platform.enrollment.http)
    year = fresh_year()
    await program.plan(year, planned=3, overseas=1)
    await program.plan(year + 1, planned=4)
    organizer = await program.organizer("Yangling Water-Saving Institute")
    held = await program.session(organizer, year, title="Drip irrigation", capacity=5)
    abroad = await program.session(organizer, year, title="Seed banks", venue_country="ET")
    people = [("KE", "female"), ("ET", "male"), ("LA", "female"), ("PE", "male")]
    enrollments = []
    for country, gender in people:
        trainee = await program.trainee(country, gender, "technical_professional")
        enrollments.append(await program.enroll(held, trainee))
    await program.enroll(abroad, await program.trainee("NP", "female", "expert"))
    await program.lifecycle(held, "close-enrollment", "start")
    for enrollment in enrollments[:3]:
        await program.step(enrollment["id"], "check-in")
        await program.step(enrollment["id"], "complete", {"completed_on": f"{year}-05-30"})
    await program.lifecycle(held, "complete")
    ok(
        await platform.reporting.http.post(
            "/commitments",
            json={
                "name": f"Technicians trained {year}-{year + 4}",
                "target": 10,
                "start_year": year,
                "end_year": year + 4,
            },
        )
    )

    async def counted() -> dict[str, Any] | None:
        # The plans travel on their own topic: the sessions' figures can be counted first.
        body = ok(await platform.reporting.http.get(f"/reports/years/{year}"))
        # A year with nothing counted yet is not found: its plan is not in either.
        response = await platform.reporting.http.get(f"/reports/years/{year + 1}")
        following = response.json() if response.status_code == 200 else {}
        complete = (
            body["trainees_completed"] == 3
            and body["sessions_held"] == 1
            and body["sessions_planned"] == 3
            and body["sessions_planned_overseas"] == 1
            and following.get("sessions_planned") == 4
        )
        return body if complete else None

    api = await eventually(counted, within=30, what="reporting counts the year")
    ARTIFACTS.mkdir(exist_ok=True)
    async with serving(platform.reporting.app) as base, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1600})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            # A viewer signs in by opening the link with the token in the fragment.
            viewer = dev_token("viewer")
            await page.goto(f"{base}/dashboard?year={year}#token={viewer}")
            await page.wait_for_selector("body[data-ready]", timeout=20_000)
            assert await page.get_attribute("body", "data-ready") == "true", errors
            assert errors == []
            shown = {
                name: await page.inner_text(f"[data-testid=figure-{name}]") for name in FIGURES
            }
            assert shown == {name: f"{api[name]:,}" for name in FIGURES}
            assert await page.input_value("[data-testid=year-filter]") == str(year)
            freshness = await page.inner_text("[data-testid=freshness]")
            assert freshness.startswith("Data as of ")
            rows = await page.locator("[data-testid=sessions] tbody tr").all_inner_texts()
            drip = next(r for r in rows if r.startswith("Drip irrigation"))
            assert drip.split("\t")[3:6] == ["80.0%", "0", "75.0%"]  # 4 of 5 places; 3 of 4
            charts = await page.evaluate(
                "() => [...document.querySelectorAll('canvas')]"
                ".filter(c => Chart.getChart(c)).length"
            )
            assert charts == 6
            await page.screenshot(path=str(ARTIFACTS / f"dashboard-{year}.png"), full_page=True)

            # A person follows the dashboard's link: the review shows, with the tab's token
            # (no Authorization header set by the test, no token in the address).
            async with page.expect_navigation():
                await page.click("#review-link")
            assert page.url == f"{base}/annual-review/{year}"
            await page.wait_for_selector("body[data-ready]", timeout=20_000)
            assert await page.get_attribute("body", "data-ready") == "true", errors
            assert errors == []
            held_text = await page.inner_text("[data-testid=review-sessions_held]")
            trained = await page.inner_text("[data-testid=review-trainees_completed]")
            countries = await page.inner_text("[data-testid=review-countries_reached]")
            assert (held_text, trained, countries) == ("1", "3", str(api["countries_reached"]))
            next_year = await page.inner_text("[data-testid=review-next-year]")
            assert "4 sessions planned" in next_year
            assert "+300.0%" in next_year  # 4 planned against 1 held
            assert "Yangling Water-Saving Institute" in await page.inner_text("body")
            overseas = [
                await page.inner_text(f"[data-testid=review-{key}]")
                for key in ("sessions_planned_overseas", "sessions_overseas_held")
            ]
            assert overseas == ["1", "0"]  # Seed banks abroad is published, not held
            await page.screenshot(path=str(ARTIFACTS / f"annual-review-{year}.png"), full_page=True)
        finally:
            await browser.close()
    assert (ARTIFACTS / f"dashboard-{year}.png").stat().st_size > 10_000
