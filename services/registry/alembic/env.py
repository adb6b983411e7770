"""Alembic environment of the registry service."""

from tpp_plumbing.db.migrations import run
from tpp_registry.store.tables import metadata

run(metadata, url_env="TPP_REGISTRY_DATABASE_URL")
