"""Annual plan routes; a plan's ETag is ``W/"<revision>"``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Response
from tpp_plumbing.web.auth import Role, allow
from tpp_plumbing.web.routing import api_router

from tpp_registry.api.deps import IfMatch, Svc, tag
from tpp_registry.api.models import Plan, PlanIn

# The program's plans are the exchange center's: operators only.
router = api_router(tags=["plans"], dependencies=[Depends(allow(Role.OPERATOR))])
Year = Annotated[int, Path(ge=2000, le=2100)]


@router.get("/plans")
async def list_plans(services: Svc) -> list[Plan]:
    """The current plan of every year."""
    return await services.plans.list()


@router.put("/plans/{year}")
async def set_plan(
    year: Year, body: PlanIn, if_match: IfMatch, services: Svc, response: Response
) -> Plan:
    """Set or revise a year's plan (a new revision unless unchanged; If-Match: revision)."""
    plan = await services.plans.set(year, body, if_match)
    tag(response, plan.revision)
    return plan


@router.get("/plans/{year}")
async def get_plan(year: Year, services: Svc, response: Response) -> Plan:
    """The current plan of a year."""
    plan = await services.plans.get(year)
    tag(response, plan.revision)
    return plan


@router.get("/plans/{year}/revisions")
async def plan_revisions(year: Year, services: Svc) -> list[Plan]:
    """Every revision of a year's plan, the first first."""
    return await services.plans.revisions(year)
