"""Outgoing events built from stored rows: ids and non-personal attributes only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from tpp_contracts.enrollment import TraineeRegisteredV1
from tpp_contracts.envelope import Event

EventT = TypeVar("EventT", bound=Event)


def enrollment_event(model: type[EventT], row: Mapping[Any, Any], **fields: Any) -> EventT:
    """An enrollment event about ``row`` (an enrollment joined with its trainee's profile)."""
    return model(
        enrollment_id=row["id"],
        session_id=row["session_id"],
        trainee_id=row["trainee_id"],
        country=row["country"],
        gender=row["gender"],
        profession=row["profession"],
        **fields,
    )


def trainee_registered(row: Mapping[Any, Any]) -> TraineeRegisteredV1:
    """The registration of a trainee: id, country, gender and profession only."""
    return TraineeRegisteredV1(
        trainee_id=row["id"],
        country=row["country"],
        gender=row["gender"],
        profession=row["profession"],
    )
