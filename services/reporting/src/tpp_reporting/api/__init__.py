"""Reporting HTTP API: JSON reports and CSV exports, commitments, the pages a person reads."""
