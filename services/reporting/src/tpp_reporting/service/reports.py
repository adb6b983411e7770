"""Reporting use cases: the reports, assembled from the projections, with their freshness.

A report is never older than what the projections held when its request arrived. Every
request asks the database for the projections' version (one indexed row, bumped in the same
transaction as each applied batch, plus a token of the commitments); a computed report is
served again while it is at least that new, else it is computed now, in one read-only
snapshot that also gives its freshness (the version, events applied, newest event, and the
offsets applied, against which its consumer lag is told). Concurrent requests for the same
report share one computation when it is new enough for each of them. Reads never go
backwards, whichever worker answers: each one's version comes from the same database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from datetime import UTC, date, datetime
from typing import Any, TypeVar, cast

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tpp_contracts.envelope import new_id
from tpp_plumbing.db.reads import ReadPool
from tpp_plumbing.web.problems import NotFoundError, ProblemError

from tpp_reporting import domain, regions
from tpp_reporting.api.models import (
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
from tpp_reporting.freshness import Freshness, LagMonitor, Positions
from tpp_reporting.store import reports as report_store
from tpp_reporting.store.connection import raw_connection
from tpp_reporting.store.projection import Connection

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

#: (projections' version, commitments' token): what a report was computed from.
Version = tuple[int, str]

SESSION_INDEX = ("session-index",)
#: Session reports computed one by one at a version before the index of all is built.
INDEX_AFTER = 32


def covers(have: Version, want: Version) -> bool:
    """Whether a report computed at ``have`` may answer a request that found ``want``.

    The projections' version only grows (a rebuild continues it), so a newer one will do;
    the commitments' token changes with every write to them and must be the same.
    """
    return have[1] == want[1] and have[0] >= want[0]


def version_of(state: dict[str, Any]) -> Version:
    """The version of the projections' state (``report_store.state``)."""
    return int(state["version"]), str(state["settings"])


class _Entry:
    __slots__ = ("value", "version")

    def __init__(self, version: Version, value: Any) -> None:
        self.version = version
        self.value = value


class ReportCache:
    """Computed reports by key, each with the version it was computed at; the least
    recently used report makes room for a new one (never all at once: dropping every report
    when full made every reader of the popular ones wait for their recomputation)."""

    def __init__(self, *, max_entries: int = 2048) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._inflight: dict[Hashable, tuple[Version, asyncio.Future[Any]]] = {}

    def valid(self, key: Hashable, version: Version) -> Any | None:
        """The value of ``key`` if it was computed at ``version`` or later."""
        entry = self._entries.get(key)
        if entry is not None and covers(entry.version, version):
            self._entries.move_to_end(key)
            return entry.value
        return None

    async def compute(
        self,
        key: Hashable,
        version: Version,
        produce: Callable[[], Awaitable[tuple[Version, Any]]],
    ) -> Any:
        """The value of ``key`` at ``version`` or later, computed now.

        ``produce`` returns the version it actually computed at (its snapshot's, never older
        than the projections were when it was called). A caller joins a computation in
        flight only if that one was asked for at ``version`` or later: one started earlier
        may predate what this caller must show.
        """
        pending = self._inflight.get(key)
        if pending is not None and covers(pending[0], version):
            return await asyncio.shield(pending[1])
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = (version, future)
        try:
            computed, value = await produce()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: waiters get it, nobody else must
            raise
        finally:
            if self._inflight.get(key, (None, None))[1] is future:
                del self._inflight[key]
        future.set_result(value)
        known = self._entries.get(key)
        if known is None or known.version[0] <= computed[0]:  # never replaced by an older one
            self._entries[key] = _Entry(computed, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return value


class StateProbe:
    """The projections' state, asked of the database for every request that wants it.

    Requests that arrive while no query is on its way share the next one. A request never
    joins a query already sent (it may have been answered before the request arrived, from
    older projections): it waits for the one after, shared with every request arriving
    meanwhile. Under load that is one query per round trip, however many requests.
    """

    def __init__(self, ask: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        self._ask = ask
        self._next: asyncio.Task[dict[str, Any]] | None = None  # not sent yet: joinable
        self._sent: asyncio.Task[dict[str, Any]] | None = None

    async def __call__(self) -> dict[str, Any]:
        task = self._next
        if task is None:
            task = asyncio.get_running_loop().create_task(self._round(self._sent))
            task.add_done_callback(_retrieve)
            self._next = task
        return await asyncio.shield(task)

    async def _round(self, before: asyncio.Task[dict[str, Any]] | None) -> dict[str, Any]:
        if before is not None and not before.done():
            await asyncio.wait({before})
        self._next, self._sent = None, asyncio.current_task()
        return await self._ask()


def _retrieve(task: asyncio.Task[Any]) -> None:
    # A round whose every waiter was cancelled must not log "exception never retrieved".
    if not task.cancelled():
        task.exception()


class _Statements:
    """The read pool seen as a connection: each statement is its own snapshot (the probe)."""

    def __init__(self, reads: ReadPool) -> None:
        self._reads = reads

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        return await self._reads.fetch(query, *args)

    async def execute(self, query: str, *args: Any) -> str:  # pragma: no cover - reads only
        raise NotImplementedError("the version probe only reads")


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
        reads: ReadPool,
        lag: LagMonitor | None = None,
        today: Callable[[], date] | None = None,
    ) -> None:
        self._sessions = sessions
        self._reads = reads
        self._lag = lag
        self._cache = ReportCache()
        self._misses: tuple[Version | None, int] = (None, 0)
        self._indexing: asyncio.Task[None] | None = None
        statements = _Statements(reads)
        self._probe = StateProbe(lambda: report_store.state(statements))
        self._today = today or (lambda: datetime.now(UTC).date())

    # --- plumbing of every report ----------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[tuple[Connection, dict[str, Any]]]:
        """A read-only snapshot of the projections, and their state in it."""
        async with self._reads.snapshot() as raw:
            conn = cast(Connection, raw)
            state = await report_store.state(conn, with_positions=True)
            yield conn, state

    async def _compute(
        self, build: Callable[[Connection], Awaitable[BaseModel]]
    ) -> tuple[Version, tuple[BaseModel, dict[str, Any]]]:
        async with self._snapshot() as (conn, state):
            report = await build(conn)
        if isinstance(report, Report) and report.keep_json:
            report.keep_body()
        return version_of(state), (report, state)

    async def _report(
        self,
        key: Hashable,
        build: Callable[[Connection], Awaitable[BaseModel]],
        version: Version | None = None,
    ) -> Any:
        if version is None:
            version = version_of(await self._probe())
        value = self._cache.valid(key, version)
        if value is None:
            value = await self._cache.compute(key, version, lambda: self._compute(build))
        report, state = value
        return report.model_copy(update={"freshness": self._freshness(state)})

    def _freshness(self, state: dict[str, Any]) -> Freshness:
        positions: Positions | None = state.get("positions")
        lag = None
        if self._lag is not None:
            lag = self._lag.current() if positions is None else self._lag.of(positions)
        return Freshness(
            version=state["version"],
            data_as_of=state["last_event_at"],
            events_applied=state["events_applied"],
            consumer_lag=lag.total if lag else None,
            lag_measured_at=lag.measured_at if lag else None,
            lag_by_partition=lag.partitions if lag else [],
        )

    async def freshness(self) -> Freshness:
        """How fresh the projections are right now."""
        async with self._snapshot() as (_, state):
            return self._freshness(state)

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
            growth[metric] = domain.growth(values[metric], base)
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
        rows = await report_store.years(conn, sorted({y for w in wanted for y in (w - 1, w)}))
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
                rows = _fold_regions(rows)
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
            return SessionsReport(rows=[_session_figures(r) for r in rows])

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
                figures_ = _session_figures(known)
                return SessionReport(**figures_.model_dump(), freshness=self._freshness(state))
        else:
            self._count_session_miss(version)

        async def build(conn: Connection) -> SessionReport:
            row = await report_store.session(conn, session_id)
            if row is not None:
                return SessionReport(**_session_figures(row).model_dump())
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
            return _follow_up_report(year, await report_store.follow_ups(conn, year))

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
        async with self._snapshot() as (conn, state):
            rows = await conn.fetch(
                "SELECT * FROM commitment WHERE commitment_id = $1", commitment_id
            )
            if not rows:
                raise CommitmentNotFoundError(f"no commitment {commitment_id}")
            return await self._progress(conn, Commitment(**dict(rows[0])), state)

    async def _progress(
        self, conn: Connection, commitment: Commitment, state: dict[str, Any] | None
    ) -> CommitmentProgress:
        by_year = await report_store.commitment_achieved(
            conn,
            metric=commitment.metric,
            start_year=commitment.start_year,
            end_year=commitment.end_year,
            field=commitment.field,
            countries=regions.countries_in(commitment.region) if commitment.region else None,
        )
        progress = domain.commitment_progress(
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
            rows = await report_store.years(conn, [year - 1, year, year + 1])
            this = self._year_figures(rows[year], self._previous_values(rows[year - 1]))
            nxt = rows[year + 1]
            countries = await report_store.breakdown(conn, year, "country")
            fields = await report_store.breakdown(conn, year, "field")
            organizers = await report_store.breakdown(conn, year, "organizer")
            names = await report_store.organizer_names(conn, [o["key"] for o in organizers])
            evaluation = await report_store.evaluations(conn, year)
            follow = _follow_up_report(year, await report_store.follow_ups(conn, year))
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
        fill_rate=domain.rate(admitted, row["capacity"]),
        completion_rate=domain.rate(row["completed"], admitted),
        no_show_rate=domain.rate(row["no_show"], admitted),
        evaluation_average=domain.average(row["score_total"], row["evaluations"]),
        evaluations=row["evaluations"],
    )


def _follow_up_report(year: int, data: dict[str, Any]) -> FollowUpReport:
    return FollowUpReport(
        year=year,
        trainees_completed=data["completed"],
        trainees_followed_up=data["followed_up"],
        coverage=domain.rate(data["followed_up"], data["completed"]),
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
