"""What every report shares: a snapshot of the projections, the cache, and the freshness.

A report is never older than what the projections held when its request arrived. Every
request asks the database for the projections' version (one indexed row, bumped in the same
transaction as each applied batch, plus a token of the commitments); a computed report is
served again while it is at least that new, else it is computed now, in one read-only
snapshot that also gives its freshness (the version, events applied, newest event, and the
offsets applied, against which its consumer lag is told). Concurrent requests for the same
report share one computation when it is new enough for each of them. Reads never go
backwards, whichever worker answers: each one's version comes from the same database.
A session report, cheap to read and polled after every change, skips the cache: it is read
with its state in one statement (``ReportingService.session_report``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel
from tpp_plumbing.db.reads import ReadPool
from tpp_plumbing.db.uow import UnitsOfWork

from tpp_reporting.api.models import Report
from tpp_reporting.freshness import Freshness, LagMonitor, freshness_of
from tpp_reporting.service.cache import ReportCache, StateProbe, Version, version_of
from tpp_reporting.store import reports as report_store
from tpp_reporting.store.reports import Rows


class ReportReader:
    """Reads the reporting projections: each report computed once per version it must show."""

    def __init__(
        self,
        units: UnitsOfWork,
        *,
        reads: ReadPool,
        lag: LagMonitor | None = None,
        today: Callable[[], date] | None = None,
    ) -> None:
        self._uow = units  # the commitments' writes
        self._reads = reads  # the reports' snapshots and one-statement reads
        self._lag = lag
        self._cache = ReportCache()
        self._probe = StateProbe(lambda: report_store.state(reads))
        self._today = today or (lambda: datetime.now(UTC).date())

    @contextlib.asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[tuple[Rows, dict[str, Any]]]:
        """A read-only snapshot of the projections, and their state in it."""
        async with self._reads.snapshot() as conn:
            state = await report_store.state(conn, with_positions=True)
            yield conn, state

    async def _compute(
        self, build: Callable[[Rows], Awaitable[BaseModel]]
    ) -> tuple[Version, tuple[BaseModel, dict[str, Any]]]:
        async with self._snapshot() as (conn, state):
            report = await build(conn)
        if isinstance(report, Report):
            report.keep_body()
        return version_of(state), (report, state)

    async def _report(
        self,
        key: Hashable,
        build: Callable[[Rows], Awaitable[BaseModel]],
        version: Version | None = None,
    ) -> Any:
        if version is None:
            version = version_of(await self._probe())
        value = self._cache.valid(key, version)
        if value is None:
            value = await self._cache.compute(key, version, lambda: self._compute(build))
        report, state = value
        return report.model_copy(update={"freshness": freshness_of(state, self._lag)})

    async def freshness(self) -> Freshness:
        """How fresh the projections are right now (one statement: its own snapshot)."""
        return freshness_of(await report_store.state(self._reads, with_positions=True), self._lag)
