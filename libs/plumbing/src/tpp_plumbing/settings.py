"""Settings shared by every service: Kafka, the outbox relay, consumers, operations."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tpp_plumbing.auth import AuthSettings


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
    auth: AuthSettings = Field(
        default_factory=AuthSettings, description="Bearer token verification (TPP_AUTH_*)."
    )
    port: int = Field(8000, description="HTTP port the service listens on.")
    relay_enabled: bool = Field(True, description="Run the outbox relay in this process.")
    relay_batch_size: int = Field(1000, description="Outbox rows published per relay round.")
    relay_poll_interval_s: float = Field(
        1.0, description="Relay polling period when no NOTIFY arrives (fallback)."
    )
    consumers_enabled: bool = Field(True, description="Run the Kafka consumers in this process.")
    consumer_concurrency: int = Field(
        4, ge=1, description="Partitions an event-by-event consumer applies at the same time."
    )
    consumer_batch_concurrency: int = Field(
        1,
        ge=1,
        description="Batches a batch consumer applies at the same time (each batch touches many"
        " aggregates: one at a time avoids lock waits between them; a waiting retry does not"
        " hold the turn).",
    )
    consumer_max_attempts: int = Field(
        5, ge=1, description="Tries of a failing event before it goes to its dead-letter topic."
    )
    consumer_backoff_s: float = Field(
        0.5, gt=0, description="First retry delay; each further retry waits twice as long."
    )
    consumer_backoff_max_s: float = Field(30.0, gt=0, description="Longest retry delay.")
    consumer_fetch_max_wait_ms: int = Field(
        50,
        ge=1,
        description="Longest a fetch waits for data: a partition resumed after its batch is"
        " fetched again at most this late (Kafka's 500 ms default idles a busy consumer).",
    )
    consumer_max_message_bytes: int = Field(
        1_048_576, description="Larger message values are poison (dead-lettered at once)."
    )
    monitor_interval_s: float = Field(
        5.0, gt=0, description="How often consumer lag and the outbox backlog are measured."
    )
    ready_max_lag: int = Field(
        10_000, description="Readiness fails while any partition lags by more events than this."
    )
    shutdown_timeout_s: float = Field(
        20.0,
        gt=0,
        description="On SIGTERM: time to finish in-flight events and flush the relay.",
    )
    trace_sample_ratio: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Share of new traces other than HTTP commands recorded when"
        " OTEL_TRACES_SAMPLER is unset (every command's trace is recorded, so any enrollment"
        " can be followed); a request with a traceparent follows its caller (parent-based).",
    )
    log_json: bool = Field(True, description="Log JSON lines to stderr (off: leave logging be).")
    log_level: str = Field("INFO", description="Level of the service's logs.")
