"""Reporting use cases: the reports read from the projections, and the commitments."""

from __future__ import annotations

from tpp_reporting.service.reports import (
    INDEX_AFTER,
    SESSION_INDEX,
    CommitmentNotFoundError,
    InvalidCommitmentError,
    ReportCache,
    ReportingService,
    StateProbe,
    Version,
)

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
