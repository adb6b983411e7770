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
    max_page_size: int = Field(
        200, ge=1, description="Largest page a list endpoint returns (422 naming `limit` above)."
    )
    csv_max_bytes: int = Field(
        5 * 1024 * 1024,
        ge=1024,
        description="Largest CSV file accepted by POST /sessions/import, in bytes: 413 naming the"
        " limit above it (the request may add 64 KiB of multipart framing).",
    )
    csv_max_rows: int = Field(
        5_000,
        ge=1,
        description="Most data rows (after the header) in one CSV upload: 413 naming the limit"
        " above it.",
    )
    home_country: str = Field(
        "CN", description="ISO code of the sponsoring country; sessions elsewhere are overseas."
    )

    @field_validator("home_country")
    @classmethod
    def _known_country(cls, code: str) -> str:
        if pycountry.countries.get(alpha_2=code.upper()) is None:
            raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
        return code.upper()
