"""The reports read from the projections: years, breakdowns, sessions, follow-ups, the review."""

from __future__ import annotations

import logging
import uuid

from tpp_reporting import domain, regions
from tpp_reporting.api.models import (
    AnnualReview,
    BreakdownReport,
    BreakdownRow,
    FollowUpReport,
    NextYearPlan,
    OrganizerFigures,
    SessionFigures,
    SessionReport,
    SessionsReport,
    YearFigures,
    YearReport,
    YearsReport,
)
from tpp_reporting.freshness import freshness_of
from tpp_reporting.service.commitments import CommitmentService
from tpp_reporting.service.figures import (
    fold_regions,
    follow_up_report,
    previous_values,
    session_figures,
    year_figures,
)
from tpp_reporting.store import reports as report_store
from tpp_reporting.store.reports import Rows

log = logging.getLogger(__name__)


class ReportingService(CommitmentService):
    """Reads the reporting projections; manages the commitments operators configure."""

    # --- years -----------------------------------------------------------------------------

    async def _years(self, conn: Rows, wanted: list[int]) -> list[YearFigures]:
        rows = await report_store.years(conn, sorted({y for w in wanted for y in (w - 1, w)}))
        return [year_figures(rows[y], previous_values(rows[y - 1])) for y in wanted]

    async def year_report(self, year: int) -> YearReport:
        """A program year's figures and their growth against the year before."""

        async def build(conn: Rows) -> YearReport:
            (figures_,) = await self._years(conn, [year])
            return YearReport(**figures_.model_dump())

        report: YearReport = await self._report(("year", year), build)
        return report

    async def years(self, first: int | None, last: int | None) -> YearsReport:
        """The figures of every year with a plan or a session (of those in ``first``..``last``
        when given), for the trend: a year with neither is left out, not listed with zeros."""

        async def build(conn: Rows) -> YearsReport:
            known = await report_store.known_years(conn)
            wanted = [
                y for y in known if (first is None or y >= first) and (last is None or y <= last)
            ]
            return YearsReport(years=await self._years(conn, wanted[:200]))

        report: YearsReport = await self._report(("years", first, last), build)
        return report

    # --- breakdowns ------------------------------------------------------------------------

    async def breakdown(self, year: int, by: str) -> BreakdownReport:
        """A year's figures by country, region, field, organizer, profession or gender."""

        async def build(conn: Rows) -> BreakdownReport:
            rows = await report_store.breakdown(conn, year, by)
            if by == "region":
                rows = fold_regions(rows)
            labels: dict[str, str] = {}
            if by == "organizer":
                labels = await report_store.organizer_names(conn, [r["key"] for r in rows])
            elif by == "country":
                labels = {r["key"]: regions.country_name(r["key"]) for r in rows}
            out = [
                BreakdownRow(
                    key=r["key"],
                    label=labels.get(r["key"], r["key"]),
                    region=regions.region(r["key"]) if by == "country" else None,
                    sessions=r.get("sessions"),
                    sessions_held=r.get("held"),
                    sessions_cancelled=r.get("cancelled"),
                    enrollments=r["enrollments"],
                    trainees_enrolled=r["enrolled"],
                    trainees_accepted=r["accepted"],
                    trainees_completed=r["completed"],
                    countries_reached=r["countries"],
                )
                for r in rows
            ]
            out.sort(key=lambda r: (-r.trainees_completed, -r.trainees_accepted, r.label))
            return BreakdownReport(year=year, by=by, rows=out)

        report: BreakdownReport = await self._report(("breakdown", year, by), build)
        return report

    # --- sessions --------------------------------------------------------------------------

    async def sessions(
        self,
        *,
        year: int | None = None,
        field: str | None = None,
        organizer_id: uuid.UUID | None = None,
        status: str | None = None,
        limit: int = 500,
        offset: int = 0,
    ) -> SessionsReport:
        """Per-session figures, filtered."""
        key = ("sessions", year, field, organizer_id, status, limit, offset)

        async def build(conn: Rows) -> SessionsReport:
            rows = await report_store.sessions(
                conn,
                year=year,
                field=field,
                organizer_id=organizer_id,
                status=status,
                limit=limit,
                offset=offset,
            )
            return SessionsReport(rows=[session_figures(r) for r in rows])

        report: SessionsReport = await self._report(key, build)
        return report

    async def session_report(self, session_id: uuid.UUID) -> SessionReport:
        """One session's figures (zero until its events arrive), read afresh for every request
        in one statement with the state it was read at (one snapshot, one round trip): a
        poll after each applied batch costs one indexed read, not a recomputation."""
        row = await report_store.session_report(self._reads, session_id)
        if row["known"]:
            figures = session_figures(row)
        else:
            figures = SessionFigures(
                session_id=session_id,
                enrolled=row["enrolled"],
                accepted=row["accepted"],
                waitlisted=row["waitlisted"],
                completed=row["completed"],
                no_show=row["no_show"],
                waitlist_length=row["waitlisted"],
            )
        return SessionReport(**figures.model_dump(), freshness=freshness_of(row, self._lag))

    # --- follow-ups ------------------------------------------------------------------------

    async def follow_ups(self, year: int) -> FollowUpReport:
        """Follow-up coverage of a year's completed trainees, and the outcomes found."""

        async def build(conn: Rows) -> FollowUpReport:
            return follow_up_report(year, await report_store.follow_ups(conn, year))

        report: FollowUpReport = await self._report(("follow-ups", year), build)
        return report

    # --- the annual review -----------------------------------------------------------------

    async def annual_review(self, year: int) -> AnnualReview:
        """A year as the center presents it at its review meeting."""

        async def build(conn: Rows) -> AnnualReview:
            rows = await report_store.years(conn, [year - 1, year, year + 1])
            this = year_figures(rows[year], previous_values(rows[year - 1]))
            nxt = rows[year + 1]
            countries = await report_store.breakdown(conn, year, "country")
            fields = await report_store.breakdown(conn, year, "field")
            organizers = await report_store.breakdown(conn, year, "organizer")
            names = await report_store.organizer_names(conn, [o["key"] for o in organizers])
            evaluation = await report_store.evaluations(conn, year)
            follow = follow_up_report(year, await report_store.follow_ups(conn, year))
            reached = sorted(
                (c for c in countries if c["accepted"]), key=lambda c: (-c["accepted"], c["key"])
            )
            listed = await self._commitment_list(conn)
            return AnnualReview(
                year=year,
                commitments=[c for c in listed.items if c.start_year <= year <= c.end_year],
                figures=this,
                countries=[
                    BreakdownRow(
                        key=c["key"],
                        label=regions.country_name(c["key"]),
                        region=regions.region(c["key"]),
                        enrollments=c["enrollments"],
                        trainees_enrolled=c["enrolled"],
                        trainees_accepted=c["accepted"],
                        trainees_completed=c["completed"],
                        countries_reached=c["countries"],
                    )
                    for c in reached
                ],
                regions=sorted({regions.region(c["key"]) for c in reached}),
                fields_covered=sorted(f["key"] for f in fields if f.get("held")),
                organizers=sorted(
                    (
                        OrganizerFigures(
                            organizer_id=o["key"],
                            name=names.get(o["key"], o["key"]),
                            sessions=o.get("sessions", 0),
                            sessions_held=o.get("held", 0),
                            trainees_accepted=o["accepted"],
                            trainees_completed=o["completed"],
                            countries_reached=o["countries"],
                        )
                        for o in organizers
                    ),
                    key=lambda o: (-o.sessions_held, -o.trainees_completed, o.name),
                ),
                evaluation_average=domain.average(
                    evaluation["score_total"], evaluation["evaluations"]
                ),
                evaluations=evaluation["evaluations"],
                follow_up_coverage=follow.coverage,
                next_year=NextYearPlan(
                    year=year + 1,
                    sessions_planned=nxt["planned_sessions"],
                    sessions_planned_overseas=nxt["planned_overseas_sessions"],
                    growth_vs_held=domain.growth(nxt["planned_sessions"], this.sessions_held),
                ),
            )

        report: AnnualReview = await self._report(("review", year, self._today()), build)
        return report
