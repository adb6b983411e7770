"""Alembic environment of the enrollment service."""

from tpp_enrollment.store.tables import metadata
from tpp_plumbing.db.migrations import run

run(metadata, url_env="TPP_ENROLLMENT_DATABASE_URL")
