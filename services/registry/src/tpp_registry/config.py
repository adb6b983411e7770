"""Registry settings, from ``TPP_REGISTRY_*`` environment variables."""

from __future__ import annotations

import pycountry
from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict
from tpp_plumbing.settings import ServiceSettings


class Settings(ServiceSettings):
    """Settings of the registry service."""

    model_config = SettingsConfigDict(env_prefix="TPP_REGISTRY_")

    port: int = Field(8001, description="HTTP port the registry listens on.")
    home_country: str = Field(
        "CN", description="ISO code of the sponsoring country; sessions elsewhere are overseas."
    )

    @field_validator("home_country")
    @classmethod
    def _known_country(cls, code: str) -> str:
        if pycountry.countries.get(alpha_2=code.upper()) is None:
            raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
        return code.upper()
