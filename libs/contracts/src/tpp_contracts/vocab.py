"""Controlled vocabularies shared by the events: enums and code formats, values in snake case."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import StringConstraints

#: An ISO 3166-1 alpha-2 country code, upper case (``"KE"``, ``"CN"``).
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]

#: An ISO 4217 currency code, upper case (``"CNY"``, ``"USD"``).
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]

#: An IETF BCP 47 language tag (``"en"``, ``"fr"``, ``"zh-Hans"``).
LanguageTag = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=35)
]


class TechnicalField(StrEnum):
    """The technical field a training session belongs to."""

    AGRICULTURE_FORESTRY = "agriculture_forestry"
    INFORMATION_TECHNOLOGY = "information_technology"
    MANUFACTURING_TECHNOLOGY = "manufacturing_technology"
    NEW_ENERGY = "new_energy"
    RESOURCES_ENVIRONMENT = "resources_environment"
    MEDICAL_HEALTH = "medical_health"
    TRANSPORTATION = "transportation"
    MODERN_SERVICES = "modern_services"
    AEROSPACE = "aerospace"
    MARINE = "marine"
    DISASTER_PREVENTION = "disaster_prevention"
    OTHER = "other"


class ProfessionCategory(StrEnum):
    """The profession category of a trainee."""

    EXPERT = "expert"
    SCHOLAR = "scholar"
    ST_OFFICIAL = "st_official"
    TECHNICAL_PROFESSIONAL = "technical_professional"


class OrganizerKind(StrEnum):
    """The kind of institution that organizes sessions."""

    ENTERPRISE = "enterprise"
    RESEARCH_INSTITUTE = "research_institute"
    UNIVERSITY = "university"
    INTERNATIONAL_CENTER = "international_center"
    GOVERNMENT_BODY = "government_body"


class Gender(StrEnum):
    """A trainee's gender as declared; ``undisclosed`` when they chose not to say."""

    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNDISCLOSED = "undisclosed"


class SessionStatus(StrEnum):
    """Where a training session is in its lifecycle.

    draft → published (enrollment open) → enrollment_closed → in_progress → completed;
    cancelled from any state before completed.
    """

    DRAFT = "draft"
    PUBLISHED = "published"
    ENROLLMENT_CLOSED = "enrollment_closed"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class EnrollmentStatus(StrEnum):
    """Where an enrollment is in its lifecycle.

    submitted → accepted | waitlisted | rejected; waitlisted → accepted;
    accepted → withdrawn | attended → completed | no_show; cancelled when the session is.
    """

    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    WAITLISTED = "waitlisted"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    CANCELLED = "cancelled"
    ATTENDED = "attended"
    COMPLETED = "completed"
    NO_SHOW = "no_show"


class RejectionReason(StrEnum):
    """Why an operator turned an application down: a category, so that events never carry
    the operator's own words (they may name the trainee; they stay in the enrollment
    service)."""

    NOT_ELIGIBLE = "not_eligible"
    INCOMPLETE_APPLICATION = "incomplete_application"
    NOT_SELECTED = "not_selected"
    COUNTRY_QUOTA = "country_quota"
    OTHER = "other"


class WithdrawalReason(StrEnum):
    """Why a trainee gave up a place or an application: a category, as for rejections."""

    SCHEDULE_CONFLICT = "schedule_conflict"
    VISA_OR_TRAVEL = "visa_or_travel"
    EMPLOYER_REQUEST = "employer_request"
    PERSONAL = "personal"
    OTHER = "other"


class FollowUpChannel(StrEnum):
    """How a follow-up after the training reached the former trainee."""

    EMAIL = "email"
    PHONE = "phone"
    VISIT = "visit"
    VIDEO_CALL = "video_call"
    SURVEY = "survey"
    OTHER = "other"


class FollowUpOutcome(StrEnum):
    """What a follow-up found the training led to."""

    TECHNOLOGY_ADOPTED = "technology_adopted"
    COOPERATION_PROJECT_STARTED = "cooperation_project_started"
    FURTHER_TRAINING = "further_training"
    NO_CONTACT = "no_contact"
    OTHER = "other"
