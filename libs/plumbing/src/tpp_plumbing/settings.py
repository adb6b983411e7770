"""Settings shared by every service: Kafka, the outbox relay, consumers, operations."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tpp_plumbing.web.edge import HttpSettings as HttpSettings
from tpp_plumbing.web.tokens import AuthSettings

SecurityProtocol = Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
RelayMode = Literal["loop", "thread", "process"]


class KafkaSettings(BaseSettings):
    """How to reach Kafka and as whom; read from ``TPP_KAFKA_*`` and shared by all services.

    Every aiokafka client of the platform (producers, consumers, admin clients) is built from
    :meth:`client_options`, so the security settings apply everywhere at once. A service
    overrides the principal with ``TPP_<SERVICE>_KAFKA_USERNAME`` / ``..._PASSWORD``.
    """

    model_config = SettingsConfigDict(env_prefix="TPP_KAFKA_")

    bootstrap: str = Field("127.0.0.1:9092", description="Comma-separated bootstrap servers.")
    topic_prefix: str = Field(
        "", description="Prefix for every topic name (tests isolate themselves with it)."
    )
    request_timeout_ms: int = Field(30_000, description="Client request timeout.")
    security_protocol: SecurityProtocol = Field(
        "PLAINTEXT",
        description="PLAINTEXT, SASL_PLAINTEXT (the local stack), SASL_SSL or SSL (TLS, with a"
        " client certificate when ssl_certfile is set).",
    )
    sasl_mechanism: SaslMechanism = Field(
        "SCRAM-SHA-512", description="SASL mechanism when the protocol is SASL_*."
    )
    username: str | None = Field(
        None, description="SASL user name (the principal `User:<username>` the ACLs name)."
    )
    password: SecretStr | None = Field(None, description="SASL password.")
    ssl_cafile: str | None = Field(
        None, description="PEM file of the CA that signed the brokers' certificates (TLS)."
    )
    ssl_certfile: str | None = Field(
        None, description="PEM client certificate (chain), for brokers that require one."
    )
    ssl_keyfile: str | None = Field(None, description="PEM private key of ssl_certfile.")
    ssl_key_password: SecretStr | None = Field(
        None, description="Password of ssl_keyfile, if it is encrypted."
    )
    ssl_check_hostname: bool = Field(
        True, description="Check that a broker's certificate names the host connected to."
    )

    @model_validator(mode="after")
    def _complete(self) -> KafkaSettings:
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ValueError("ssl_keyfile is set but ssl_certfile is not")
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KafkaSettings:
        """Settings from the ``TPP_KAFKA_*`` entries of ``env`` (e.g. deploy/local.env read as
        a file) instead of the process environment; no topic prefix."""
        fields = {
            name: env[f"TPP_KAFKA_{name.upper()}"]
            for name in cls.model_fields
            if f"TPP_KAFKA_{name.upper()}" in env and name != "topic_prefix"
        }
        return cls.model_validate(fields | {"topic_prefix": ""})

    def topic(self, name: str) -> str:
        """The full name of a topic under this prefix."""
        return f"{self.topic_prefix}{name}"

    @property
    def uses_tls(self) -> bool:
        """The connection is encrypted (SSL or SASL_SSL)."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        """Clients authenticate with SASL (SASL_PLAINTEXT or SASL_SSL)."""
        return self.security_protocol.startswith("SASL_")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context clients use (system CAs unless ``ssl_cafile``); None without TLS."""
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ssl_cafile)
        context.check_hostname = self.ssl_check_hostname
        if self.ssl_certfile:
            password = self.ssl_key_password.get_secret_value() if self.ssl_key_password else None
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile, password)
        return context

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client: servers, protocol, SASL, TLS."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            # Checked here, not at load: a service's own principal replaces the shared one.
            if not self.username or self.password is None:
                raise ValueError(f"Kafka {self.security_protocol} needs a username and password")
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.username
            options["sasl_plain_password"] = self.password.get_secret_value()
        return options

    def as_principal(self, username: str, password: SecretStr | str) -> KafkaSettings:
        """The same connection, authenticated as another user."""
        secret = password if isinstance(password, SecretStr) else SecretStr(password)
        return self.model_copy(update={"username": username, "password": secret})

    def with_prefix(self, topic_prefix: str) -> KafkaSettings:
        """The same connection and principal, under another topic prefix."""
        return self.model_copy(update={"topic_prefix": topic_prefix})


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
    http: HttpSettings = Field(
        default_factory=HttpSettings,
        description="HTTP edge: header, timeout, concurrency and rate limits (TPP_HTTP_*).",
    )
    kafka_username: str | None = Field(
        None,
        description="This service's own Kafka principal (TPP_<SERVICE>_KAFKA_USERNAME); it"
        " replaces TPP_KAFKA_USERNAME, so that the ACLs see which service is asking.",
    )
    kafka_password: SecretStr | None = Field(
        None, description="Password of kafka_username (TPP_<SERVICE>_KAFKA_PASSWORD)."
    )
    port: int = Field(8000, description="HTTP port the service listens on.")
    relay_enabled: bool = Field(True, description="Run the outbox relay in this process.")
    relay_mode: RelayMode = Field(
        "process",
        description="Where the outbox relay runs: `process`, a process of its own that"
        " tpp_plumbing.serve starts next to the workers, which only NOTIFY it of their commits"
        " (an app not served by tpp_plumbing.serve runs it as `loop`: nothing would start the"
        " process); `loop`, a task on each HTTP worker's event loop (an event leaves later"
        " under load); `thread`, a thread and event loop of its own in each worker (the"
        " workers answer fewer commands per core) (docs/decisions/0007-relay-thread.md).",
    )
    relay_batch_size: int = Field(1000, description="Outbox rows published per relay round.")
    relay_poll_interval_s: float = Field(
        1.0, description="Relay polling period when no NOTIFY arrives (fallback)."
    )
    relay_lease_s: float = Field(
        5.0,
        ge=1.0,
        description="A relay leader silent this long (paused, cut off) loses the publishing"
        " lock: PostgreSQL ends its lock session, and another replica's relay takes over (a"
        " killed leader's lock is freed at once). The leader proves its lock every fifth of it.",
    )
    consumers_enabled: bool = Field(True, description="Run the Kafka consumers in this process.")
    consumer_concurrency: int = Field(
        4, ge=1, description="Partitions an event-by-event consumer applies at the same time."
    )
    consumer_batch_concurrency: int = Field(
        1,
        ge=1,
        description="Transactions a batch consumer applies at the same time, a fetch's"
        " partitions shared out between them (each batch touches many aggregates: one at a"
        " time avoids lock waits between them; a waiting retry does not hold the turn).",
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
    consumer_session_timeout_ms: int = Field(
        10_000,
        ge=6_000,
        description="A consumer that sends no heartbeat this long (killed, paused) is out of"
        " its group and its partitions go to the others; with consumer_instance_id, also how"
        " long a restarting replica keeps its partitions.",
    )
    consumer_rebalance_timeout_ms: int = Field(
        30_000,
        ge=10_000,
        description="How long the group waits for its members to rejoin in a rebalance. A"
        " consumer giving partitions up waits for their in-flight batches up to this less 5 s"
        " (the offset commit's share), so that it rejoins in time.",
    )
    consumer_instance_id: str | None = Field(
        None,
        description="This replica's stable name (e.g. its pod name) for static group"
        " membership: each consumer joins as `<id>-<worker>-<n>`, does not leave the group"
        " when stopped, and a replica restarted within consumer_session_timeout_ms gets its"
        " partitions back without a rebalance (rolling restarts). Unset: dynamic membership.",
    )
    consumer_max_message_bytes: int = Field(
        1_048_576, description="Larger message values are poison (dead-lettered at once)."
    )
    monitor_interval_s: float = Field(
        5.0, gt=0, description="How often consumer lag and the outbox backlog are measured."
    )
    lag_behind_threshold: int = Field(
        10_000,
        ge=0,
        description="/health/lag says `behind` while any partition lags by more events than"
        " this. Readiness ignores lag: a replica catching up still serves.",
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
    max_body_bytes: int = Field(
        1_048_576,
        ge=1024,
        description="Largest request body accepted, in bytes (CSV uploads have their own cap):"
        " a larger one gets 413, refused from its Content-Length or as it streams in.",
    )
    max_page_size: int = Field(
        500,
        ge=1,
        description="Largest page a list endpoint returns: a larger `limit` gets 422 naming it.",
    )
    log_json: bool = Field(True, description="Log JSON lines to stderr (off: leave logging be).")
    log_level: str = Field("INFO", description="Level of the service's logs.")

    @model_validator(mode="after")
    def _rebalance_fits(self) -> ServiceSettings:
        if self.consumer_session_timeout_ms > self.consumer_rebalance_timeout_ms:
            raise ValueError(
                "consumer_session_timeout_ms must not exceed consumer_rebalance_timeout_ms"
            )
        return self

    @model_validator(mode="after")
    def _own_principal(self) -> ServiceSettings:
        if self.kafka_username:
            if self.kafka_password is None:
                raise ValueError("kafka_username is set but kafka_password is not")
            self.kafka = self.kafka.as_principal(self.kafka_username, self.kafka_password)
        return self

    @property
    def relay_process(self) -> bool:
        """The service wants its relay in a process of its own (what ``tpp_plumbing.serve``
        reads, before it builds any app, to know whether to start one)."""
        return self.relay_enabled and self.relay_mode == "process"
