"""Annual plans: how many sessions a year should hold, revised as the year is planned."""

from __future__ import annotations

from typing import Any

from tpp_contracts.registry import AnnualPlanSetV1
from tpp_plumbing.db.uow import UnitsOfWork
from tpp_plumbing.web.problems import NotFoundError

from tpp_registry.api.models import Plan, PlanIn
from tpp_registry.service.common import check_version
from tpp_registry.store import plans as store

_FIELDS = ("planned_sessions", "planned_overseas_sessions", "budget", "currency", "note")


class PlanService:
    """Sets and revises annual plans, keeping every revision; each one is a plan event."""

    def __init__(self, units: UnitsOfWork) -> None:
        self._uow = units

    async def set(self, year: int, data: PlanIn, expected: int | None = None) -> Plan:
        """Set a year's plan: a new revision unless it equals the current one.

        ``expected`` is the revision the change is based on (412 when it is not current).
        """
        async with self._uow() as uow:
            current = await store.lock_current(uow.db, year)
            check_version(expected, current, what="revision")
            if current > 0:
                latest = _plan(await store.revision(uow.db, year, current))
                if latest.model_dump(include=set(_FIELDS)) == data.model_dump():
                    return latest
            values = data.model_dump() | {"year": year, "revision": current + 1}
            await store.add_revision(uow.db, values)
            uow.emit(AnnualPlanSetV1(**values))
            return _plan(await store.revision(uow.db, year, current + 1))

    async def get(self, year: int) -> Plan:
        """The current plan of a year."""
        async with self._uow.read() as db:
            current = await store.current(db, year)
            if not current:
                raise NotFoundError(f"no plan for {year}")
            return _plan(await store.revision(db, year, current))

    async def revisions(self, year: int) -> list[Plan]:
        """Every revision of a year's plan, the first first."""
        async with self._uow.read() as db:
            plans = [_plan(r) for r in await store.revisions(db, year)]
        if not plans:
            raise NotFoundError(f"no plan for {year}")
        return plans

    async def list(self) -> list[Plan]:
        """The current plan of every year, by year."""
        async with self._uow.read() as db:
            return [_plan(r) for r in await store.currents(db)]


def _plan(row: dict[str, Any]) -> Plan:
    return Plan.model_validate(row)
