"""Reporting use cases: the reports, assembled from the projections, with their freshness.

Reports are read-mostly and change only when a batch of events is applied, so a computed
report is kept and served again while the projections' version is the same (the version is
asked of the database at most every ``cache_max_age_s``, once for all reports). When it moved
on, the last report is served at once (its freshness says as of when) while the new one is
computed in the background (stale-while-revalidate); only a report never computed makes its
reader wait. Concurrent requests for the same report share one computation.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tpp_contracts.envelope import new_id
from tpp_plumbing.problems import NotFoundError, ProblemError

from tpp_reporting import figures, queries, regions
from tpp_reporting.consumers import raw_connection
from tpp_reporting.freshness import Freshness, LagMonitor
from tpp_reporting.models import (
    AnnualReview,
    BreakdownReport,
    BreakdownRow,
    Commitment,
    CommitmentIn,
    CommitmentList,
    CommitmentProgress,
    FollowUpReport,
    NextYearPlan,
    OrganizerFigures,
    OutcomeRow,
    Report,
    SessionFigures,
    SessionIndex,
    SessionReport,
    SessionsReport,
    YearFigures,
    YearReport,
    YearsReport,
)
from tpp_reporting.projection import Connection

T = TypeVar("T", bound=BaseModel)
log = logging.getLogger(__name__)

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


class _Entry:
    __slots__ = ("value", "version")

    def __init__(self, version: Hashable, value: Any) -> None:
        self.version = version
        self.value = value


class ReportCache:
    """Computed reports by key, valid while the projections' version is unchanged; the least
    recently used report makes room for a new one (never all at once: dropping every report
    when full made every reader of the popular ones wait for their recomputation)."""

    def __init__(self, *, max_entries: int = 2048) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._inflight: dict[Hashable, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def valid(self, key: Hashable, version: Hashable) -> Any | None:
        """A value computed at ``version`` (and now known to still be current)."""
        entry = self._entries.get(key)
        if entry is not None and entry.version == version:
            self._entries.move_to_end(key)
            return entry.value
        return None

    def stale(self, key: Hashable) -> Any | None:
        """The last value computed for ``key``, whatever its version."""
        entry = self._entries.get(key)
        return entry.value if entry is not None else None

    def refresh(
        self, key: Hashable, version: Hashable, produce: Callable[[], Awaitable[Any]]
    ) -> None:
        """Recompute ``key`` in the background (once, however many readers ask)."""
        if key in self._inflight:
            return
        task = asyncio.get_running_loop().create_task(self._refresh(key, version, produce))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh(
        self, key: Hashable, version: Hashable, produce: Callable[[], Awaitable[Any]]
    ) -> None:
        try:
            await self.compute(key, version, produce)
        except Exception:  # the reader got the last value; the next one tries again
            log.warning("report refresh failed", exc_info=True)

    def clear(self) -> None:
        """Forget every computed report (after a write this process made)."""
        self._entries.clear()

    async def compute(
        self, key: Hashable, version: Hashable, produce: Callable[[], Awaitable[Any]]
    ) -> Any:
        """Compute once for every caller waiting on the same key."""
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await produce()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: waiters get it, nobody else must
            raise
        finally:
            self._inflight.pop(key, None)
        future.set_result(value)
        self._entries[key] = _Entry(version, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return value


class CommitmentNotFoundError(NotFoundError):
    """No commitment has that id."""


class InvalidCommitmentError(ProblemError):
    """A commitment that cannot be tracked (e.g. an unknown region)."""

    status = 422
    title = "Invalid commitment"


class ReportingService:
    """Reads the reporting projections; manages the commitments operators configure."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        lag: LagMonitor | None = None,
        cache_max_age_s: float = 1.0,
        today: Callable[[], date] | None = None,
    ) -> None:
        self._sessions = sessions
        self._lag = lag
        self._cache = ReportCache()
        self._max_age_s = cache_max_age_s
        self._known: dict[str, Any] | None = None
        self._known_at = 0.0
        self._asking: asyncio.Task[dict[str, Any]] | None = None
        self._today = today or (lambda: datetime.now(UTC).date())

    # --- plumbing of every report ----------------------------------------------------------

    async def _compute(
        self, build: Callable[[Connection], Awaitable[BaseModel]], state: dict[str, Any]
    ) -> tuple[BaseModel, dict[str, Any]]:
        async with self._sessions() as session:
            report = await build(await raw_connection(session))
        if isinstance(report, Report) and report.keep_json:
            report.keep_body()
        return report, state

    async def _state(self) -> dict[str, Any]:
        """The projections' state, asked of the database at most every ``cache_max_age_s``
        (one query for all reports, however many are requested)."""
        now = time.monotonic()
        if self._known is not None and now - self._known_at < self._max_age_s:
            return self._known
        if self._asking is None:
            self._asking = asyncio.get_running_loop().create_task(self._ask_state())
        asking = self._asking
        try:
            state = await asyncio.shield(asking)
        finally:
            if asking.done() and self._asking is asking:
                self._asking = None
        return state

    async def _ask_state(self) -> dict[str, Any]:
        async with self._sessions() as session:
            state = await queries.state(await raw_connection(session))
        self._known, self._known_at = state, time.monotonic()
        return state

    async def _report(
        self, key: Hashable, build: Callable[[Connection], Awaitable[BaseModel]]
    ) -> Any:
        state = await self._state()
        version = (state["version"], state["settings"])
        value = self._cache.valid(key, version)
        if value is None:
            value = self._cache.stale(key)
            if value is not None:
                # Serve the last computed report (its freshness says how old) and compute
                # the new one in the background: no reader waits for it.
                self._cache.refresh(key, version, lambda: self._compute(build, state))
            else:
                value = await self._cache.compute(key, version, lambda: self._compute(build, state))
        report, computed_state = value
        return report.model_copy(update={"freshness": self._freshness(computed_state)})

    def _freshness(self, state: dict[str, Any]) -> Freshness:
        lag = self._lag.current() if self._lag is not None else None
        return Freshness(
            data_as_of=state["last_event_at"],
            events_applied=state["events_applied"],
            consumer_lag=lag.total if lag else None,
            lag_measured_at=lag.measured_at if lag else None,
            lag_by_partition=lag.partitions if lag else [],
        )

    async def freshness(self) -> Freshness:
        """How fresh the projections are right now."""
        async with self._sessions() as session:
            return self._freshness(await queries.state(await raw_connection(session)))

    # --- years -----------------------------------------------------------------------------

    @staticmethod
    def _year_figures(row: dict[str, Any], previous: dict[str, Any] | None) -> YearFigures:
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
            growth[metric] = figures.growth(values[metric], base)
        return YearFigures(year=row["year"], growth=growth, **values)

    @staticmethod
    def _previous_values(row: dict[str, Any]) -> dict[str, Any]:
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

    async def _years(self, conn: Connection, wanted: list[int]) -> list[YearFigures]:
        rows = await queries.years(conn, sorted({y for w in wanted for y in (w - 1, w)}))
        return [self._year_figures(rows[y], self._previous_values(rows[y - 1])) for y in wanted]

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
            known = await queries.known_years(conn)
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
            rows = await queries.breakdown(conn, year, by)
            if by == "region":
                rows = _fold_regions(rows)
            labels: dict[str, str] = {}
            if by == "organizer":
                labels = await queries.organizer_names(conn, [r["key"] for r in rows])
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
            rows = await queries.sessions(
                conn,
                year=year,
                field=field,
                organizer_id=organizer_id,
                status=status,
                limit=limit,
                offset=offset,
            )
            return SessionsReport(rows=[_session_figures(r) for r in rows])

        report: SessionsReport = await self._report(key, build)
        return report

    async def session_report(self, session_id: uuid.UUID) -> SessionReport:
        """One session's figures (zero until its events arrive).

        Answered from an index of every session's figures, computed in one grouped query
        per version of the projections; a session not in it yet is looked up on its own.
        """
        index: SessionIndex = await self._report(("session-index",), self._session_index)
        known = index.rows.get(session_id)
        if known is not None:
            figures_ = _session_figures(known)
            return SessionReport(**figures_.model_dump(), freshness=index.freshness)

        async def build(conn: Connection) -> SessionReport:
            row = await queries.session(conn, session_id)
            if row is not None:
                return SessionReport(**_session_figures(row).model_dump())
            counts = await queries.enrollment_counts(conn, session_id)
            return SessionReport(
                session_id=session_id,
                enrolled=counts["enrolled"],
                accepted=counts["accepted"],
                waitlisted=counts["waitlisted"],
                completed=counts["completed"],
                no_show=counts["no_show"],
                waitlist_length=counts["waitlisted"],
            )

        report: SessionReport = await self._report(("session", session_id), build)
        return report

    async def _session_index(self, conn: Connection) -> SessionIndex:
        rows = await queries.every_session(conn)
        # Raw rows, made into figures one by one when asked: building ten thousand models at
        # once would hold the event loop for a noticeable while.
        return SessionIndex.model_construct(rows={r["session_id"]: r for r in rows})

    # --- follow-ups ------------------------------------------------------------------------

    async def follow_ups(self, year: int) -> FollowUpReport:
        """Follow-up coverage of a year's completed trainees, and the outcomes found."""

        async def build(conn: Connection) -> FollowUpReport:
            return _follow_up_report(year, await queries.follow_ups(conn, year))

        report: FollowUpReport = await self._report(("follow-ups", year), build)
        return report

    # --- commitments -----------------------------------------------------------------------

    async def create_commitment(self, body: CommitmentIn) -> CommitmentProgress:
        """Configure a new multi-year commitment."""
        _check_commitment(body)
        commitment_id = new_id()
        async with self._sessions() as session, session.begin():
            conn = await raw_connection(session)
            await conn.execute(
                "INSERT INTO commitment (commitment_id, name, metric, target, start_year,"
                " end_year, field, region) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                commitment_id,
                body.name,
                body.metric,
                body.target,
                body.start_year,
                body.end_year,
                body.field,
                body.region,
            )
        self._cache.clear()
        self._known = None
        return await self.commitment(commitment_id)

    async def update_commitment(
        self, commitment_id: uuid.UUID, body: CommitmentIn
    ) -> CommitmentProgress:
        """Replace a commitment's definition."""
        _check_commitment(body)
        async with self._sessions() as session, session.begin():
            conn = await raw_connection(session)
            status = await conn.execute(
                "UPDATE commitment SET name = $2, metric = $3, target = $4, start_year = $5,"
                " end_year = $6, field = $7, region = $8 WHERE commitment_id = $1",
                commitment_id,
                body.name,
                body.metric,
                body.target,
                body.start_year,
                body.end_year,
                body.field,
                body.region,
            )
        self._cache.clear()
        self._known = None
        if status.endswith(" 0"):
            raise CommitmentNotFoundError(f"no commitment {commitment_id}")
        return await self.commitment(commitment_id)

    async def delete_commitment(self, commitment_id: uuid.UUID) -> None:
        """Stop tracking a commitment."""
        async with self._sessions() as session, session.begin():
            conn = await raw_connection(session)
            status = await conn.execute(
                "DELETE FROM commitment WHERE commitment_id = $1", commitment_id
            )
        self._cache.clear()
        self._known = None
        if status.endswith(" 0"):
            raise CommitmentNotFoundError(f"no commitment {commitment_id}")

    async def commitments(self) -> list[CommitmentProgress]:
        """Every commitment with its progress."""
        report: CommitmentList = await self._report(
            ("commitments", self._today()), self._commitment_list
        )
        fresh = report.freshness
        return [c.model_copy(update={"freshness": fresh}) for c in report.items]

    async def _commitment_list(self, conn: Connection) -> CommitmentList:
        rows = await conn.fetch("SELECT * FROM commitment ORDER BY start_year, name")
        return CommitmentList(
            items=[await self._progress(conn, Commitment(**dict(r)), None) for r in rows]
        )

    async def commitment(self, commitment_id: uuid.UUID) -> CommitmentProgress:
        """One commitment with its progress."""
        async with self._sessions() as session:
            conn = await raw_connection(session)
            rows = await conn.fetch(
                "SELECT * FROM commitment WHERE commitment_id = $1", commitment_id
            )
            if not rows:
                raise CommitmentNotFoundError(f"no commitment {commitment_id}")
            state = await queries.state(conn)
            return await self._progress(conn, Commitment(**dict(rows[0])), state)

    async def _progress(
        self, conn: Connection, commitment: Commitment, state: dict[str, Any] | None
    ) -> CommitmentProgress:
        by_year = await queries.commitment_achieved(
            conn,
            metric=commitment.metric,
            start_year=commitment.start_year,
            end_year=commitment.end_year,
            field=commitment.field,
            countries=regions.countries_in(commitment.region) if commitment.region else None,
        )
        progress = figures.commitment_progress(
            target=commitment.target,
            achieved=sum(by_year.values()),
            start_year=commitment.start_year,
            end_year=commitment.end_year,
            today=self._today(),
        )
        return CommitmentProgress(
            **commitment.model_dump(),
            achieved=progress.achieved,
            share_achieved=progress.share_achieved,
            share_of_time_elapsed=progress.share_of_time_elapsed,
            remaining=progress.remaining,
            years_left=progress.years_left,
            yearly_pace_needed=progress.yearly_pace_needed,
            on_track=progress.on_track,
            by_year={
                y: by_year.get(y, 0) for y in range(commitment.start_year, commitment.end_year + 1)
            },
            freshness=self._freshness(state) if state is not None else None,
        )

    # --- the annual review -----------------------------------------------------------------

    async def annual_review(self, year: int) -> AnnualReview:
        """A year as the center presents it at its review meeting."""

        async def build(conn: Connection) -> AnnualReview:
            rows = await queries.years(conn, [year - 1, year, year + 1])
            this = self._year_figures(rows[year], self._previous_values(rows[year - 1]))
            nxt = rows[year + 1]
            countries = await queries.breakdown(conn, year, "country")
            fields = await queries.breakdown(conn, year, "field")
            organizers = await queries.breakdown(conn, year, "organizer")
            names = await queries.organizer_names(conn, [o["key"] for o in organizers])
            evaluation = await queries.evaluations(conn, year)
            follow = _follow_up_report(year, await queries.follow_ups(conn, year))
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
                evaluation_average=figures.average(
                    evaluation["score_total"], evaluation["evaluations"]
                ),
                evaluations=evaluation["evaluations"],
                follow_up_coverage=follow.coverage,
                next_year=NextYearPlan(
                    year=year + 1,
                    sessions_planned=nxt["planned_sessions"],
                    sessions_planned_overseas=nxt["planned_overseas_sessions"],
                    growth_vs_held=figures.growth(nxt["planned_sessions"], this.sessions_held),
                ),
            )

        report: AnnualReview = await self._report(("review", year, self._today()), build)
        return report


def _fold_regions(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
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


def _session_figures(row: dict[str, Any]) -> SessionFigures:
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
        fill_rate=figures.rate(admitted, row["capacity"]),
        completion_rate=figures.rate(row["completed"], admitted),
        no_show_rate=figures.rate(row["no_show"], admitted),
        evaluation_average=figures.average(row["score_total"], row["evaluations"]),
        evaluations=row["evaluations"],
    )


def _follow_up_report(year: int, data: dict[str, Any]) -> FollowUpReport:
    return FollowUpReport(
        year=year,
        trainees_completed=data["completed"],
        trainees_followed_up=data["followed_up"],
        coverage=figures.rate(data["followed_up"], data["completed"]),
        outcomes=[OutcomeRow(**o) for o in data["outcomes"]],
    )


def _check_commitment(body: CommitmentIn) -> None:
    if body.region and not regions.countries_in(body.region):
        raise InvalidCommitmentError(
            f"unknown region {body.region!r}",
            errors=[
                {"field": "region", "in": "body", "detail": "not a UN M49 region or sub-region"}
            ],
        )
