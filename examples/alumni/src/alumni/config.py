"""Settings from the environment (``ALUMNI_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the alumni service reads events and keeps its roster."""

    model_config = SettingsConfigDict(env_prefix="ALUMNI_")

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Comma-separated bootstrap servers.")
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "SASL_PLAINTEXT", description="As the platform's AsyncAPI document says for its servers."
    )
    kafka_username: str = Field("subscriber", description="Our read-only subscriber principal.")
    kafka_password: SecretStr = Field(
        SecretStr("subscriber-dev-secret"), description="Its SCRAM-SHA-512 password."
    )
    topic_prefix: str = Field("", description="Prefix of the platform's topic names (tests).")
    group_id: str = Field(
        "subscriber.alumni",
        description="Our consumer group: it must start with our principal's name and a dot.",
    )
    from_beginning: bool = Field(
        True,
        description="A new group starts at the beginning of the retained log (else from now).",
    )
    database_url: str = Field(
        "postgresql://postgres:postgres@127.0.0.1:55432/alumni",
        description="Our own PostgreSQL database (asyncpg DSN).",
    )
    max_records: int = Field(500, description="Most records applied in one transaction.")
