"""Example events: a valid instance of any event model, for tests and documentation."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from tpp_contracts.envelope import Event
from tpp_contracts.topics import ORGANIZERS, SESSIONS
from tpp_contracts.vocab import (
    EnrollmentStatus,
    FollowUpChannel,
    FollowUpOutcome,
    Gender,
    OrganizerKind,
    ProfessionCategory,
    SessionStatus,
    TechnicalField,
)

E = TypeVar("E", bound=Event)

#: An example value for each field name the event models use (shared across models).
EXAMPLE_VALUES: dict[str, Any] = {
    # ids
    "organizer_id": uuid.UUID("0b6f3a52-2d0c-4e0e-9a51-5d1f7f0a0001"),
    "session_id": uuid.UUID("5e55e55e-2d0c-4e0e-9a51-5d1f7f0a0002"),
    "trainee_id": uuid.UUID("7a1ee000-2d0c-4e0e-9a51-5d1f7f0a0003"),
    "enrollment_id": uuid.UUID("e0e0e0e0-2d0c-4e0e-9a51-5d1f7f0a0004"),
    "evaluation_id": uuid.UUID("e7a10000-2d0c-4e0e-9a51-5d1f7f0a0005"),
    "follow_up_id": uuid.UUID("f0110000-2d0c-4e0e-9a51-5d1f7f0a0006"),
    # organizers
    "name": "Northwest Institute of Water-Saving Agriculture",
    "kind": OrganizerKind.RESEARCH_INSTITUTE,
    "province": "Shaanxi",
    "contact": "International Training Office, 3 Taicheng Road, Yangling",
    # plans
    "year": 2026,
    "planned_sessions": 55,
    "planned_overseas_sessions": 2,
    "budget": Decimal("12000000.00"),
    "currency": "CNY",
    "revision": 1,
    "note": None,
    # sessions
    "version": 1,
    "title": "Drip irrigation for smallholder farms",
    "field": TechnicalField.AGRICULTURE_FORESTRY,
    "start_date": date(2026, 5, 11),
    "end_date": date(2026, 5, 29),
    "venue_city": "Yangling",
    "venue_country": "CN",
    "overseas": False,
    "capacity": 30,
    "previous_capacity": 25,
    "languages": ["en", "fr"],
    "description": None,
    "review_required": True,
    "country_limit": 3,
    "status": SessionStatus.PUBLISHED,
    # trainees and enrollments
    "country": "KE",
    "gender": Gender.FEMALE,
    "profession": ProfessionCategory.TECHNICAL_PROFESSIONAL,
    "previous_status": EnrollmentStatus.ACCEPTED,
    "reason": "session_cancelled",
    "position": 1,
    "checked_in_at": datetime(2026, 5, 11, 8, 30, tzinfo=UTC),
    "certificate_number": "TPP-2026-000123",
    "completed_on": date(2026, 5, 29),
    "score": 5,
    "has_comment": True,
    "followed_up_on": date(2026, 11, 20),
    "channel": FollowUpChannel.EMAIL,
    "outcome": FollowUpOutcome.TECHNOLOGY_ADOPTED,
}

# Where one field name means different things on different topics.
_TOPIC_VALUES: dict[str, dict[str, Any]] = {
    ORGANIZERS.name: {"country": "CN"},
    SESSIONS.name: {"previous_status": SessionStatus.PUBLISHED, "reason": "venue unavailable"},
}


def example(model: type[E], **overrides: Any) -> E:
    """A valid ``model`` event: every field without a default from the examples, or overrides.

    Raises:
        KeyError: a required field has neither an example value nor an override.
        TypeError: an override names no field of the model.
    """
    unknown = overrides.keys() - model.model_fields.keys()
    if unknown:
        raise TypeError(f"{model.__name__} has no field(s) {', '.join(sorted(unknown))}")
    values = {**EXAMPLE_VALUES, **_TOPIC_VALUES.get(model.topic.name, {})}
    data: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name in overrides:
            data[name] = overrides[name]
        elif info.is_required():
            if name not in values:
                raise KeyError(f"no example value for {model.__name__}.{name}")
            data[name] = values[name]
    return model.model_validate(data)
