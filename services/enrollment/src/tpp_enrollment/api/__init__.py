"""Enrollment HTTP API: routes per area (enrollments, trainees, feedback, imports) and models."""
