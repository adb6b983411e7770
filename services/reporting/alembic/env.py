"""Alembic environment of the reporting service."""

from tpp_plumbing.db.migrations import run
from tpp_reporting.store.tables import metadata

run(metadata, url_env="TPP_REPORTING_DATABASE_URL")
