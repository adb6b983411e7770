"""Evaluation and follow-up routes."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import Query
from tpp_plumbing.web.auth import Operator
from tpp_plumbing.web.limits import IsoDate, page_size
from tpp_plumbing.web.routing import api_router

from tpp_enrollment.api.deps import EnrollmentSvc, Svc
from tpp_enrollment.api.models import Evaluation, EvaluationIn, FollowUp, FollowUpDue, FollowUpIn

router = api_router(tags=["feedback"])


@router.post("/enrollments/{enrollment_id}/evaluation", status_code=201)
async def evaluate(enrollment_id: uuid.UUID, body: EvaluationIn, svc: EnrollmentSvc) -> Evaluation:
    """The trainee's evaluation (score 1-5, comment); only after attending, once."""
    return await svc.feedback.evaluate(enrollment_id, body)


@router.post("/enrollments/{enrollment_id}/follow-ups", status_code=201)
async def record_follow_up(
    enrollment_id: uuid.UUID, body: FollowUpIn, svc: EnrollmentSvc
) -> FollowUp:
    """Record a follow-up with a trainee who completed the session."""
    return await svc.feedback.record_follow_up(enrollment_id, body)


@router.get("/enrollments/{enrollment_id}/follow-ups")
async def follow_ups(enrollment_id: uuid.UUID, svc: EnrollmentSvc) -> list[FollowUp]:
    """An enrollment's follow-ups, oldest first."""
    return await svc.queries.follow_ups(enrollment_id)


@router.get("/follow-ups/due")
async def follow_ups_due(
    svc: Svc,
    _: Operator,
    as_of: Annotated[
        IsoDate | None,
        Query(
            ge=date(1900, 1, 1),
            le=date(9998, 12, 31),
            description="The day the follow-ups are due by (default today), 1900-9998.",
        ),
    ] = None,
    limit: int = page_size(100),
) -> list[FollowUpDue]:
    """Follow-ups due on ``as_of`` (default today): a completed enrollment's 3, 6 or 12 month
    milestone, from its due date until its window closes (``closes_on``), unless a follow-up
    dated in its window met it. Windows meet halfway between two milestones.

    Operators only: the list spans every organizer's sessions.
    """
    return await svc.queries.follow_ups_due(as_of or date.today(), limit)
