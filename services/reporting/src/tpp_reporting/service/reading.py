"""What every report shares: the cache, and the freshness of the copy served.

A report is never older than what the projections held when its request arrived. Every
request asks the database for the projections' version (one indexed row, bumped in the same
transaction as each applied batch, plus a token of the commitments); a computed report is
served again while it is at least that new, else it is read now, with the state it was read
at, in one statement (its own snapshot): its version, events applied, newest event, and the
offsets applied, against which its consumer lag is told. Concurrent requests for the same
report share one computation when it is new enough for each of them. Reads never go
backwards, whichever worker answers: each one's version comes from the same database.
A session report and a commitment, cheap to read, skip the cache: each is read with its
state in one statement.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel
from tpp_plumbing.db.reads import ReadPool
from tpp_plumbing.db.uow import UnitsOfWork

from tpp_reporting.api.models import Report
from tpp_reporting.freshness import Freshness, LagMonitor, freshness_of
from tpp_reporting.service.cache import ReportCache, StateProbe, Version, version_of
from tpp_reporting.store import sql

#: A report as read, and the projections' state it was read at.
Read = tuple[BaseModel, dict[str, Any]]


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
        self._uow = units
        self._reads = reads
        self._lag = lag
        self._cache = ReportCache()
        self._probe = StateProbe(lambda: sql.state(reads))
        self._today = today or (lambda: datetime.now(UTC).date())

    async def _compute(self, read: Callable[[], Awaitable[Read]]) -> tuple[Version, Read]:
        report, state = await read()
        if isinstance(report, Report):
            report.keep_body()
        return version_of(state), (report, state)

    async def _report(self, key: Hashable, read: Callable[[], Awaitable[Read]]) -> Any:
        """The report ``key``, as new as the projections are now: the cached copy, or ``read``
        now (one statement for the version, and one more when the copy is older)."""
        version = version_of(await self._probe())
        value = self._cache.valid(key, version)
        if value is None:
            value = await self._cache.compute(key, version, lambda: self._compute(read))
        report, state = value
        return report.model_copy(update={"freshness": freshness_of(state, self._lag)})

    async def freshness(self) -> Freshness:
        """How fresh the projections are right now (one statement: its own snapshot)."""
        return freshness_of(await sql.state(self._reads, positions=True), self._lag)
