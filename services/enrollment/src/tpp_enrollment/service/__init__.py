"""Enrollment use cases; each owns its transaction and writes its events to the outbox."""

from tpp_enrollment.service.enrollments import EnrollmentService
from tpp_enrollment.service.feedback import FeedbackService
from tpp_enrollment.service.queries import QueryService
from tpp_enrollment.service.sessions import SessionProjector
from tpp_enrollment.service.trainees import TraineeService

__all__ = [
    "EnrollmentService",
    "FeedbackService",
    "QueryService",
    "SessionProjector",
    "TraineeService",
]
