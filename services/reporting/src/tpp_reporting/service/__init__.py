"""Reporting use cases: the reports read from the projections, and the commitments."""

from __future__ import annotations

from tpp_reporting.service.cache import ReportCache, StateProbe, Version
from tpp_reporting.service.commitments import CommitmentNotFoundError, InvalidCommitmentError
from tpp_reporting.service.reports import INDEX_AFTER, SESSION_INDEX, ReportingService

__all__ = [
    "INDEX_AFTER",
    "SESSION_INDEX",
    "CommitmentNotFoundError",
    "InvalidCommitmentError",
    "ReportCache",
    "ReportingService",
    "StateProbe",
    "Version",
]
