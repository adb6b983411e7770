"""Reporting settings, from ``TPP_REPORTING_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from tpp_plumbing.settings import ServiceSettings


class Settings(ServiceSettings):
    """Settings of the reporting service (it publishes nothing: no relay by default)."""

    model_config = SettingsConfigDict(env_prefix="TPP_REPORTING_")

    port: int = Field(8003, description="HTTP port the reporting service listens on.")
    relay_enabled: bool = Field(False, description="Reporting has no outbox to relay.")
    batch_size: int = Field(1000, description="Events applied per transaction.")
