"""Reporting use cases: the reports read from the projections, and the commitments."""

from __future__ import annotations

from tpp_reporting.service.cache import ReportCache, StateProbe, Version
from tpp_reporting.service.commitments import CommitmentNotFoundError, InvalidCommitmentError
from tpp_reporting.service.reports import ReportingService

__all__ = [
    "CommitmentNotFoundError",
    "InvalidCommitmentError",
    "ReportCache",
    "ReportingService",
    "StateProbe",
    "Version",
]
