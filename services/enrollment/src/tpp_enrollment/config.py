"""Enrollment settings, from ``TPP_ENROLLMENT_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from tpp_plumbing.settings import ServiceSettings


class Settings(ServiceSettings):
    """Settings of the enrollment service."""

    model_config = SettingsConfigDict(env_prefix="TPP_ENROLLMENT_")

    port: int = Field(8002, description="HTTP port the enrollment service listens on.")
