"""After the training: the trainee's evaluation and the follow-ups with former trainees."""

from __future__ import annotations

import uuid

from tpp_contracts.enrollment import EvaluationSubmittedV1, FollowUpRecordedV1
from tpp_contracts.envelope import new_id
from tpp_contracts.vocab import EnrollmentStatus
from tpp_plumbing.db.uow import UnitsOfWork
from tpp_plumbing.web.problems import ConflictError, ProblemError

from tpp_enrollment.api.models import Evaluation, EvaluationIn, FollowUp, FollowUpIn
from tpp_enrollment.events import enrollment_event
from tpp_enrollment.service.places import locked_enrollment
from tpp_enrollment.store import feedback as store

S = EnrollmentStatus
EVALUATORS = frozenset({S.ATTENDED, S.COMPLETED})


class FeedbackService:
    """Records evaluations (by trainees who attended) and follow-ups (after completion)."""

    def __init__(self, units: UnitsOfWork) -> None:
        self._uow = units

    async def evaluate(self, enrollment_id: uuid.UUID, data: EvaluationIn) -> Evaluation:
        """The trainee's one evaluation of the session: score 1-5 and an optional comment."""
        evaluation = Evaluation(id=new_id(), enrollment_id=enrollment_id, **data.model_dump())
        async with self._uow() as uow:
            row, _ = await locked_enrollment(uow.db, enrollment_id)
            if S(row["status"]) not in EVALUATORS:
                raise ConflictError(
                    f"only a trainee who attended can evaluate; the enrollment is {row['status']}",
                    current_status=row["status"],
                )
            if not await store.add_evaluation(uow.db, evaluation.model_dump()):
                raise ConflictError("this enrollment has been evaluated already")
            event = enrollment_event(
                EvaluationSubmittedV1,
                row,
                evaluation_id=evaluation.id,
                score=data.score,
                has_comment=bool(data.comment),
            )
            uow.emit(event)
        return evaluation

    async def record_follow_up(self, enrollment_id: uuid.UUID, data: FollowUpIn) -> FollowUp:
        """A follow-up with a trainee who completed the session."""
        follow_up = FollowUp(id=new_id(), enrollment_id=enrollment_id, **data.model_dump())
        async with self._uow() as uow:
            row, _ = await locked_enrollment(uow.db, enrollment_id)
            if row["status"] != S.COMPLETED:
                raise ConflictError(
                    f"follow-ups come after completion; the enrollment is {row['status']}",
                    current_status=row["status"],
                )
            if row["completed_on"] is not None and data.followed_up_on < row["completed_on"]:
                raise ProblemError(
                    f"a follow-up comes after the completion on {row['completed_on']}",
                    status=422,
                    field="followed_up_on",
                )
            await store.add_follow_up(uow.db, follow_up.model_dump(mode="python"))
            event = enrollment_event(
                FollowUpRecordedV1,
                row,
                follow_up_id=follow_up.id,
                followed_up_on=data.followed_up_on,
                channel=data.channel,
                outcome=data.outcome,
            )
            uow.emit(event)
        return follow_up
