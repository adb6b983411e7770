"""The reports read from the projections: years, breakdowns, sessions, follow-ups, the review."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tpp_plumbing.db.reads import ReadPool

from tpp_reporting import domain, regions
from tpp_reporting.api.models import (
    AnnualReview,
    BreakdownReport,
    BreakdownRow,
    FollowUpReport,
    NextYearPlan,
    OrganizerFigures,
    SessionIndex,
    SessionReport,
    SessionsReport,
    YearFigures,
    YearReport,
    YearsReport,
)
from tpp_reporting.freshness import LagMonitor
from tpp_reporting.service.cache import Version, version_of
from tpp_reporting.service.commitments import CommitmentService
from tpp_reporting.service.figures import (
    fold_regions,
    follow_up_report,
    previous_values,
    session_figures,
    year_figures,
)
from tpp_reporting.store import reports as report_store
from tpp_reporting.store.projection import Connection

log = logging.getLogger(__name__)

SESSION_INDEX = ("session-index",)
#: Session reports computed one by one at a version before the index of all is built.
INDEX_AFTER = 32


class ReportingService(CommitmentService):
    """Reads the reporting projections; manages the commitments operators configure."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        reads: ReadPool,
        lag: LagMonitor | None = None,
        today: Callable[[], date] | None = None,
    ) -> None:
        super().__init__(sessions, reads=reads, lag=lag, today=today)
        self._misses: tuple[Version | None, int] = (None, 0)
        self._indexing: asyncio.Task[None] | None = None

    # --- years -----------------------------------------------------------------------------

    async def _years(self, conn: Connection, wanted: list[int]) -> list[YearFigures]:
        rows = await report_store.years(conn, sorted({y for w in wanted for y in (w - 1, w)}))
        return [year_figures(rows[y], previous_values(rows[y - 1])) for y in wanted]

    async def year_report(self, year: int) -> YearReport:
        """A program year's figures and their growth against the year before."""

        async def build(conn: Connection) -> YearReport:
            (figures_,) = await self._years(conn, [year])
            return YearReport(**figures_.model_dump())

        report: YearReport = await self._report(("year", year), build)
        return report

    async def years(self, first: int | None, last: int | None) -> YearsReport:
        """The figures of every year with a plan or a session (of those in ``first``..``last``
        when given), for the trend: a year with neither is left out, not listed with zeros."""

        async def build(conn: Connection) -> YearsReport:
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

        async def build(conn: Connection) -> BreakdownReport:
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

        async def build(conn: Connection) -> SessionsReport:
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
        """One session's figures (zero until its events arrive).

        Answered from an index of every session's figures when one is as new as the request
        needs; else computed for the session alone. The index (one grouped pass over all the
        facts) is built in the background once INDEX_AFTER sessions were asked at one
        version: while events keep arriving it would be outdated before it is used.
        """
        version = version_of(await self._probe())
        index = self._cache.valid(SESSION_INDEX, version)
        if index is not None:
            rows, state = index
            known = rows.rows.get(session_id)
            if known is not None:
                figures_ = session_figures(known)
                return SessionReport(**figures_.model_dump(), freshness=self._freshness(state))
        else:
            self._count_session_miss(version)

        async def build(conn: Connection) -> SessionReport:
            row = await report_store.session(conn, session_id)
            if row is not None:
                return SessionReport(**session_figures(row).model_dump())
            counts = await report_store.enrollment_counts(conn, session_id)
            return SessionReport(
                session_id=session_id,
                enrolled=counts["enrolled"],
                accepted=counts["accepted"],
                waitlisted=counts["waitlisted"],
                completed=counts["completed"],
                no_show=counts["no_show"],
                waitlist_length=counts["waitlisted"],
            )

        report: SessionReport = await self._report(("session", session_id), build, version)
        return report

    def _count_session_miss(self, version: Version) -> None:
        if self._misses[0] != version:
            self._misses = (version, 0)
        self._misses = (version, self._misses[1] + 1)
        if self._misses[1] == INDEX_AFTER and (self._indexing is None or self._indexing.done()):
            self._indexing = asyncio.get_running_loop().create_task(self._build_index(version))

    async def _build_index(self, version: Version) -> None:
        try:
            await self._cache.compute(
                SESSION_INDEX, version, lambda: self._compute(self._session_index)
            )
        except Exception:  # the requests were answered one by one; a later one tries again
            log.warning("session index not built", exc_info=True)

    async def _session_index(self, conn: Connection) -> SessionIndex:
        rows = await report_store.every_session(conn)
        # Raw rows, made into figures one by one when asked: building ten thousand models at
        # once would hold the event loop for a noticeable while.
        return SessionIndex.model_construct(rows={r["session_id"]: r for r in rows})

    # --- follow-ups ------------------------------------------------------------------------

    async def follow_ups(self, year: int) -> FollowUpReport:
        """Follow-up coverage of a year's completed trainees, and the outcomes found."""

        async def build(conn: Connection) -> FollowUpReport:
            return follow_up_report(year, await report_store.follow_ups(conn, year))

        report: FollowUpReport = await self._report(("follow-ups", year), build)
        return report

    # --- the annual review -----------------------------------------------------------------

    async def annual_review(self, year: int) -> AnnualReview:
        """A year as the center presents it at its review meeting."""

        async def build(conn: Connection) -> AnnualReview:
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
