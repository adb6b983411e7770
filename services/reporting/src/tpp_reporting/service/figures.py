"""The projections' rows made into the reports' figures (growth, rates, regions folded)."""

from __future__ import annotations

from typing import Any

from tpp_reporting import domain, regions
from tpp_reporting.api.models import FollowUpReport, OutcomeRow, SessionFigures, YearFigures

GROWTH_METRICS = (
    "sessions_planned",
    "sessions_published",
    "sessions_held",
    "sessions_cancelled",
    "sessions_overseas",
    "sessions_overseas_held",
    "sessions_overseas_cancelled",
    "trainees_enrolled",
    "trainees_accepted",
    "trainees_completed",
    "countries_reached",
)


def year_figures(row: dict[str, Any], previous: dict[str, Any] | None) -> YearFigures:
    """A year's figures from its row, with growth against ``previous`` (its year before)."""
    values = {
        "sessions_planned": row["planned_sessions"],
        "sessions_planned_overseas": row["planned_overseas_sessions"],
        "sessions": row["sessions"],
        "sessions_published": row["published"],
        "sessions_held": row["held"],
        "sessions_completed": row["held"],
        "sessions_cancelled": row["cancelled"],
        "sessions_overseas": row["overseas"],
        "sessions_overseas_held": row["overseas_held"],
        "sessions_overseas_cancelled": row["overseas_cancelled"],
        "enrollments": row["enrollments"],
        "trainees_enrolled": row["enrolled"],
        "trainees_accepted": row["accepted"],
        "trainees_completed": row["completed"],
        "countries_reached": row["countries"],
    }
    growth: dict[str, float | None] = {}
    for metric in GROWTH_METRICS:
        base = None
        if previous is not None:
            base = previous.get(metric)
        growth[metric] = domain.growth(values[metric], base)
    return YearFigures(year=row["year"], growth=growth, **values)


def previous_values(row: dict[str, Any]) -> dict[str, Any]:
    """A year's row as the values its next year's growth is measured against."""
    return {
        "sessions_planned": row["planned_sessions"],
        "sessions_published": row["published"],
        "sessions_held": row["held"],
        "sessions_cancelled": row["cancelled"],
        "sessions_overseas": row["overseas"],
        "sessions_overseas_held": row["overseas_held"],
        "sessions_overseas_cancelled": row["overseas_cancelled"],
        "trainees_enrolled": row["enrolled"],
        "trainees_accepted": row["accepted"],
        "trainees_completed": row["completed"],
        "countries_reached": row["countries"],
    }


def fold_regions(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A breakdown by country folded into one by UN M49 region."""
    folded: dict[str, dict[str, Any]] = {}
    for row in rows:
        name = regions.region(row["key"])
        target = folded.setdefault(
            name,
            {
                "key": name,
                "enrollments": 0,
                "enrolled": 0,
                "accepted": 0,
                "completed": 0,
                "countries": 0,
            },
        )
        for column in ("enrollments", "enrolled", "accepted", "completed", "countries"):
            target[column] += row[column]
    return list(folded.values())


def session_figures(row: dict[str, Any]) -> SessionFigures:
    """A session's figures from its row, with its rates."""
    admitted = row["accepted"]
    return SessionFigures(
        session_id=row["session_id"],
        title=row["title"],
        year=row["year"],
        field=row["field"],
        organizer_id=row["organizer_id"],
        organizer=row["organizer"],
        venue_country=row["venue_country"],
        overseas=row["overseas"],
        status=row["status"],
        capacity=row["capacity"],
        enrolled=row["enrolled"],
        accepted=admitted,
        waitlisted=row["waitlisted"],
        waitlist_length=row["waitlisted"],
        completed=row["completed"],
        no_show=row["no_show"],
        fill_rate=domain.rate(admitted, row["capacity"]),
        completion_rate=domain.rate(row["completed"], admitted),
        no_show_rate=domain.rate(row["no_show"], admitted),
        evaluation_average=domain.average(row["score_total"], row["evaluations"]),
        evaluations=row["evaluations"],
    )


def follow_up_report(year: int, data: dict[str, Any]) -> FollowUpReport:
    """A year's follow-up coverage and outcomes."""
    return FollowUpReport(
        year=year,
        trainees_completed=data["completed"],
        trainees_followed_up=data["followed_up"],
        coverage=domain.rate(data["followed_up"], data["completed"]),
        outcomes=[OutcomeRow(**o) for o in data["outcomes"]],
    )
