"""Settings shared by every service: Kafka, the outbox relay, the HTTP port."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """How to reach Kafka; read from ``TPP_KAFKA_*`` and shared by all services."""

    model_config = SettingsConfigDict(env_prefix="TPP_KAFKA_")

    bootstrap: str = Field("127.0.0.1:9092", description="Comma-separated bootstrap servers.")
    topic_prefix: str = Field(
        "", description="Prefix for every topic name (tests isolate themselves with it)."
    )
    request_timeout_ms: int = Field(30_000, description="Client request timeout.")

    def topic(self, name: str) -> str:
        """The full name of a topic under this prefix."""
        return f"{self.topic_prefix}{name}"


class ServiceSettings(BaseSettings):
    """Settings every service has; a service subclasses it with its own env prefix."""

    database_url: str = Field(
        description="SQLAlchemy URL of the service's own database (postgresql+asyncpg://...)."
    )
    database_pool_size: int = Field(10, description="Connections kept open in the pool.")
    kafka: KafkaSettings = Field(
        default_factory=KafkaSettings, description="Kafka connection (TPP_KAFKA_*)."
    )
    port: int = Field(8000, description="HTTP port the service listens on.")
    relay_enabled: bool = Field(True, description="Run the outbox relay in this process.")
    relay_batch_size: int = Field(1000, description="Outbox rows published per relay round.")
    relay_poll_interval_s: float = Field(
        1.0, description="Relay polling period when no NOTIFY arrives (fallback)."
    )
    consumers_enabled: bool = Field(True, description="Run the Kafka consumers in this process.")
