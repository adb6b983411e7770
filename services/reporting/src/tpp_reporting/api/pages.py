"""The pages a person reads: the dashboard (charts, filters by year) and the annual review.

The dashboard is one static HTML page that reads the JSON reports and draws them with
Chart.js (vendored from npm in ``static/``, MIT licence beside it). The annual review is
rendered on the server (``/reports/annual-review/{year}?fmt=html``): it reads like the
document presented at the review meeting. Both pages are public shells that fetch their
content with the bearer token the tab keeps (``static/token.js``).
"""

from __future__ import annotations

import math
from html import escape
from importlib import resources
from typing import Any

from fastapi import Path
from fastapi.responses import HTMLResponse, RedirectResponse
from tpp_plumbing.web.routing import api_router

from tpp_reporting.api.models import AnnualReview

router = api_router(tags=["pages"])
STATIC = resources.files("tpp_reporting") / "static"


@router.get("/", include_in_schema=False)
async def home() -> RedirectResponse:
    """The dashboard is the service's home page."""
    return RedirectResponse("/dashboard")


@router.get("/dashboard", response_class=HTMLResponse, summary="Dashboard page with charts")
async def dashboard() -> HTMLResponse:
    """Trend by year, countries and regions, fields, organizers, commitments; ``?year=``."""
    return HTMLResponse((STATIC / "dashboard.html").read_text(encoding="utf-8"))


def _num(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def share(value: float | None) -> str:
    """A fraction as a percent that keeps small progress visible: 0.3 is 30.0%, 0.00004 is
    0.004%, 0 is 0%."""
    if value is None:
        return "n/a"
    percent = value * 100
    if percent == 0 or percent >= 1:
        return f"{percent:,.1f}%" if percent else "0%"
    if percent < 0.0001:
        return "< 0.0001%"
    digits = 1 - math.floor(math.log10(percent))  # two significant digits
    return f"{percent:.{digits}f}".rstrip("0").rstrip(".") + "%"


def _growth(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}%"


def render_review(review: AnnualReview) -> str:
    """The annual review as an HTML document."""
    f = review.figures
    y = review.year
    fresh = review.freshness
    as_of = fresh.data_as_of.isoformat(timespec="seconds") if fresh and fresh.data_as_of else "—"
    lag = "unknown" if not fresh or fresh.consumer_lag is None else _num(fresh.consumer_lag)
    headline = [
        ("sessions_held", "Sessions held", f.sessions_held),
        ("sessions_planned", "Sessions planned", f.sessions_planned),
        ("sessions_cancelled", "Cancelled", f.sessions_cancelled),
        ("sessions_planned_overseas", "Overseas planned", f.sessions_planned_overseas),
        ("sessions_overseas_held", "Overseas held", f.sessions_overseas_held),
        ("sessions_overseas_cancelled", "Overseas cancelled", f.sessions_overseas_cancelled),
        ("trainees_completed", "People trained", f.trainees_completed),
        ("trainees_accepted", "Trainees admitted", f.trainees_accepted),
        ("countries_reached", "Countries reached", f.countries_reached),
        ("fields_covered", "Fields covered", len(review.fields_covered)),
    ]
    cards = "".join(
        f'<div class="card"><div class="label">{escape(label)}</div>'
        f'<div class="value" data-testid="review-{key}">{_num(value)}</div>'
        '<div class="growth">'
        f"{f'vs {y - 1}: ' + _growth(f.growth.get(key)) if key in f.growth else ''}"
        "</div></div>"
        for key, label, value in headline
    )
    organizers = "".join(
        f"<tr><td>{escape(o.name)}</td><td>{o.sessions_held}</td><td>{o.sessions}</td>"
        f"<td>{o.trainees_completed}</td><td>{o.countries_reached}</td></tr>"
        for o in review.organizers
    )
    countries = "".join(
        f"<tr><td>{escape(c.label)}</td><td>{escape(c.region or '')}</td>"
        f"<td>{c.trainees_accepted}</td><td>{c.trainees_completed}</td></tr>"
        for c in review.countries
    )
    commitments = "".join(
        f"<tr><td>{escape(c.name)}</td><td>{c.start_year}&ndash;{c.end_year}</td>"
        f"<td>{_num(c.achieved)} / {_num(c.target)}</td>"
        f'<td data-testid="review-share-achieved">{share(c.share_achieved)}</td>'
        f"<td>{_pct(c.share_of_time_elapsed)}</td><td>{_num(c.yearly_pace_needed)}</td></tr>"
        for c in review.commitments
    )
    nxt = review.next_year
    fields = ", ".join(escape(x.replace("_", " ")) for x in review.fields_covered) or "none"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Annual review {y}</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body class="review">
<header><h1>Annual review {y}</h1>
<p class="fresh" data-testid="freshness">Data as of {escape(as_of)} · consumer lag {lag}
 · <a href="/dashboard?year={y}">dashboard</a>
 · <a href="/annual-review/{y - 1}">{y - 1}</a> · <a href="/annual-review/{y + 1}">{y + 1}</a>
</p></header>
<section class="cards">{cards}</section>
<section><h2>Next year's plan</h2>
<p data-testid="review-next-year">{nxt.year}: {_num(nxt.sessions_planned)} sessions planned
({_num(nxt.sessions_planned_overseas)} overseas), {_growth(nxt.growth_vs_held)} against the
{_num(f.sessions_held)} sessions held in {y}.</p></section>
<section><h2>Fields covered</h2><p>{fields}</p>
<p>Evaluation average {_num(review.evaluation_average)} of 5 ({review.evaluations}
evaluations); follow-up coverage {_pct(review.follow_up_coverage)}.</p></section>
<section><h2>Organizers</h2><table><thead><tr><th>Organizer</th><th>Held</th>
<th>Sessions</th><th>Trained</th><th>Countries</th></tr></thead>
<tbody>{organizers}</tbody></table></section>
<section><h2>Countries reached</h2><table><thead><tr><th>Country</th><th>Region (UN M49)</th>
<th>Admitted</th><th>Trained</th></tr></thead><tbody>{countries}</tbody></table></section>
<section><h2>Commitments</h2><table><thead><tr><th>Commitment</th><th>Period</th>
<th>Progress</th><th>Achieved</th><th>Time elapsed</th><th>Yearly pace needed</th></tr>
</thead><tbody>{commitments}</tbody></table></section>
</body></html>"""


@router.get("/annual-review/{year}", response_class=HTMLResponse, summary="Annual review page")
async def annual_review_page(year: int = Path(ge=2000, le=2100)) -> HTMLResponse:
    """A year's review as the center presents it: a public shell, like the dashboard, that
    shows ``/reports/annual-review/{year}?fmt=html`` fetched with the tab's token (open it
    with ``#token=<JWT>``, or follow the dashboard's link)."""
    return HTMLResponse((STATIC / "review.html").read_text(encoding="utf-8"))
