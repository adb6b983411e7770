"""Commitments: the multi-year targets operators configure, with their progress."""

from __future__ import annotations

import uuid
from typing import Any

from tpp_contracts.envelope import new_id
from tpp_plumbing.web.problems import NotFoundError, ProblemError

from tpp_reporting import domain, regions
from tpp_reporting.api.models import Commitment, CommitmentIn, CommitmentList, CommitmentProgress
from tpp_reporting.freshness import Freshness, freshness_of
from tpp_reporting.service.reading import ReportReader
from tpp_reporting.store import commitments as commitment_store
from tpp_reporting.store import reports as report_store
from tpp_reporting.store.reports import Rows


class CommitmentNotFoundError(NotFoundError):
    """No commitment has that id."""


class InvalidCommitmentError(ProblemError):
    """A commitment that cannot be tracked (e.g. an unknown region)."""

    status = 422
    title = "Invalid commitment"


class CommitmentService(ReportReader):
    """Manages the commitments and reports their progress."""

    async def create_commitment(self, body: CommitmentIn) -> CommitmentProgress:
        """Configure a new multi-year commitment."""
        _check_commitment(body)
        commitment_id = new_id()
        async with self._uow() as uow:
            await commitment_store.add(uow.db, commitment_id, dict(body))
        return await self.commitment(commitment_id)

    async def update_commitment(
        self, commitment_id: uuid.UUID, body: CommitmentIn
    ) -> CommitmentProgress:
        """Replace a commitment's definition."""
        _check_commitment(body)
        async with self._uow() as uow:
            found = await commitment_store.replace(uow.db, commitment_id, dict(body))
        if not found:
            raise CommitmentNotFoundError(f"no commitment {commitment_id}")
        return await self.commitment(commitment_id)

    async def delete_commitment(self, commitment_id: uuid.UUID) -> None:
        """Stop tracking a commitment."""
        async with self._uow() as uow:
            found = await commitment_store.remove(uow.db, commitment_id)
        if not found:
            raise CommitmentNotFoundError(f"no commitment {commitment_id}")

    async def commitments(self) -> list[CommitmentProgress]:
        """Every commitment with its progress."""
        report: CommitmentList = await self._report(
            ("commitments", self._today()), self._commitment_list
        )
        fresh = report.freshness
        return [c.model_copy(update={"freshness": fresh}) for c in report.items]

    async def commitments_with_freshness(self) -> tuple[list[CommitmentProgress], Freshness]:
        """Every commitment with its progress, and how fresh the projections are now (the
        CSV export's headers)."""
        return await self.commitments(), await self.freshness()

    async def _commitment_list(self, conn: Rows) -> CommitmentList:
        rows = await commitment_store.every(conn)
        return CommitmentList(
            items=[await self._progress(conn, Commitment(**r), None) for r in rows]
        )

    async def commitment(self, commitment_id: uuid.UUID) -> CommitmentProgress:
        """One commitment with its progress."""
        async with self._snapshot() as (conn, state):
            row = await commitment_store.one(conn, commitment_id)
            if row is None:
                raise CommitmentNotFoundError(f"no commitment {commitment_id}")
            return await self._progress(conn, Commitment(**row), state)

    async def _progress(
        self, conn: Rows, commitment: Commitment, state: dict[str, Any] | None
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
            freshness=freshness_of(state, self._lag) if state is not None else None,
        )


def _check_commitment(body: CommitmentIn) -> None:
    if body.region and not regions.countries_in(body.region):
        raise InvalidCommitmentError(
            f"unknown region {body.region!r}",
            errors=[
                {"field": "region", "in": "body", "detail": "not a UN M49 region or sub-region"}
            ],
        )
