"""Registry settings, from ``TPP_REGISTRY_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from tpp_plumbing.settings import ServiceSettings


class Settings(ServiceSettings):
    """Settings of the registry service."""

    model_config = SettingsConfigDict(env_prefix="TPP_REGISTRY_")

    port: int = Field(8001, description="HTTP port the registry listens on.")
    home_country: str = Field(
        "CN", description="ISO code of the sponsoring country; sessions elsewhere are overseas."
    )
